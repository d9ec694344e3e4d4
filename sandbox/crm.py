"""The sandbox's CRM endpoint: a webhook receiver that records every request it gets, so a test can check
what the store's CRM bridge delivered, and how often. It plays each of the three styles the bridge speaks
(``hub/domain/crm.py``): ``/crm/<name>`` takes the generic shape, ``/crm/<name>/<operation>`` the
Springbig-style and Alpine IQ-style operations, ``GET /crm/<name>/events/<event id>`` answers whether an
event arrived (200) or not (404). A request whose signature does not verify is refused with 401 and
recorded as refused. The sandbox's faults (outage, dropped answers) apply here as to the state APIs.

Admin (no auth): ``GET /_sandbox/crm`` every request received; ``PUT /_sandbox/crm`` {"secret": …} the
signing secret (default: the demo's); ``DELETE /_sandbox/crm`` forget everything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from sandbox.http import Reply, Request, Router, message

DEMO_SECRET = "storehub-demo-crm-secret"


def signature_ok(secret: str, timestamp: str, given: str, body: bytes, now: float) -> bool:
    """As documented for receivers (hub/domain/crm.py, written again here on purpose): HMAC-SHA256 of
    ``timestamp + "." + body``, hex, after ``sha256=``; the timestamp within five minutes of now."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > 300 or not given.startswith("sha256="):
        return False
    want = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, given[len("sha256=") :].strip())


class CrmEndpoint:
    def __init__(self, secret: str = DEMO_SECRET) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []

    def routes(self, router: Router) -> None:
        router.add("POST", "/crm/{name}", self.post)
        router.add("POST", "/crm/{name}/{operation}", self.post)
        router.add("GET", "/crm/{name}/events/{event}", self.lookup)

    def admin_routes(self, admin: Router) -> None:
        admin.add(
            "GET",
            "/_sandbox/crm",
            lambda req: Reply(200, {"received": self.received, "secret_set": bool(self.secret)}),
        )
        admin.add("PUT", "/_sandbox/crm", self.configure)
        admin.add("DELETE", "/_sandbox/crm", self.clear)

    def post(self, req: Request) -> Reply:
        ok = signature_ok(
            self.secret,
            req.headers.get("x-storehub-timestamp", ""),
            req.headers.get("x-storehub-signature", ""),
            req.body,
            time.time(),
        )
        try:
            body = json.loads(req.body or b"null")
        except ValueError:
            return message(400, "The body is not JSON.")
        record = {
            "name": req.params["name"],
            "operation": req.params.get("operation", ""),
            "event_id": req.headers.get("x-storehub-event", ""),
            "idempotency_key": req.headers.get("idempotency-key", ""),
            "api_key": req.headers.get("x-apikey", ""),
            "signature_valid": ok,
            "accepted": ok,
            "at": time.time(),
            "body": body,
        }
        self.received.append(record)
        if not ok:
            return message(401, "The signature does not match (X-Storehub-Signature).")
        return Reply(200, {"received": record["event_id"]})

    def lookup(self, req: Request) -> Reply:
        event = req.params["event"]
        if any(r["accepted"] and r["event_id"] == event for r in self.received):
            return Reply(200, {"event_id": event})
        return message(404, f"No event {event}.")

    def configure(self, req: Request) -> Reply:
        body = req.json() or {}
        if not isinstance(body, dict) or not isinstance(body.get("secret", ""), str):
            return message(400, 'Give {"secret": "…"}.')
        self.secret = body.get("secret", self.secret)
        return Reply(200, {"secret_set": True})

    def clear(self, req: Request) -> Reply:
        self.received.clear()
        return Reply(200, {"cleared": True})
