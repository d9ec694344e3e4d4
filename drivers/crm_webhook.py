"""The CRM webhook over HTTP (httpx on trio): one signed POST per outbox entry, and the lookup that comes
before re-sending an entry whose answer was lost. This is the one place an HTTP answer or a transport
error becomes an outbox outcome (``hub.domain.outbox.Outcome``); the CRM actor decides on nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from hub.domain.crm import lookup_path, request_for
from hub.domain.outbox import OutboxEntry
from hub.state_channel.senders import Attempt

# a 500/502/504 may have been applied before the error: the outcome is unknown, look it up first
_UNKNOWN = {500, 502, 504}


class CrmWebhook:
    system = "crm"

    def __init__(
        self,
        url: str,
        *,
        style: str,
        secret: str,
        api_key: str = "",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        decode_event: Callable[[OutboxEntry], object],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.style = style
        self.secret = secret
        self.api_key = api_key
        self.clock = clock
        self.decode_event = decode_event
        self.client = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, entry: OutboxEntry) -> Attempt:
        event = self.decode_event(entry)
        req = request_for(event, style=self.style, secret=self.secret, now=self.clock(), api_key=self.api_key)  # type: ignore[arg-type]
        try:
            r = await self.client.post(self.url + req.path, content=req.body, headers=req.headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Attempt(
                "unavailable", f"The CRM cannot be reached: {type(exc).__name__}.", "crm_unavailable"
            )
        except httpx.HTTPError as exc:
            # the request left; no answer came back
            return Attempt(
                "outcome_unknown", f"No answer from the CRM: {type(exc).__name__}.", "crm_outcome_unknown"
            )
        return _from_status(r)

    async def lookup(self, entry: OutboxEntry) -> Attempt:
        path = lookup_path(self.style, entry.idempotency_key)
        if path is None:
            # no way to ask: re-send; the service upserts by the event's own id, so it stays once
            return Attempt("not_found")
        try:
            r = await self.client.get(
                self.url + path, headers={"x-apikey": self.api_key} if self.api_key else {}
            )
        except httpx.HTTPError as exc:
            return Attempt(
                "unavailable", f"The CRM cannot be asked: {type(exc).__name__}.", "crm_unavailable"
            )
        if r.status_code == 200:
            return Attempt("found")
        if r.status_code == 404:
            return Attempt("not_found")
        return (
            _from_status(r)
            if r.status_code >= 400
            else Attempt("unavailable", f"HTTP {r.status_code}", "crm_unavailable")
        )


def _from_status(r: httpx.Response) -> Attempt:
    code = r.status_code
    if 200 <= code < 300 or code == 409:  # 409: it has this event already
        return Attempt("sent")
    text = r.text[:300]
    if code == 429:
        try:
            after = float(r.headers.get("retry-after", "") or 0)
        except ValueError:
            after = 0.0
        return Attempt("rate_limited", text, "crm_rate_limited", retry_after=after)
    if code in (401, 403):
        return Attempt("auth", f"The CRM refused the credentials ({code}).", "crm_auth")
    if code in _UNKNOWN:
        return Attempt("outcome_unknown", f"HTTP {code}: {text}", "crm_outcome_unknown")
    if code >= 500:
        return Attempt("unavailable", f"HTTP {code}: {text}", "crm_unavailable")
    return Attempt("rejected", f"HTTP {code}: {text}", "crm_rejected")
