"""The sandbox HTTP server: an ASGI app served by hypercorn on trio, emulating Metrc v2 and BioTrack.

    storehub sandbox [--port N] [--host H] [--data DIR] [--seed demo]

Admin endpoints (no auth; bind to loopback):

    GET  /_sandbox                      this text
    GET  /_sandbox/faults               current fault settings and counters
    PUT  /_sandbox/faults               partial update, JSON object with any of:
         error_rate (0..1)              share of API requests answered 500 without being applied
         latency_ms (int)               added to every API request
         outage_seconds (number)        answer 503 to every API request for this long (0 ends it)
         outage (bool)                  start an open-ended outage / end it
         drop_every (int N)             every Nth matching request is applied, then the connection drops
                                        without a response ("stored but the response lost"); 0 = off
         drop_methods (list)            which methods count for drop_every (default all)
         get_rate_per_second (int)      GET limit per facility (Metrc: 50), answered 429 when exceeded
         get_concurrency (int)          concurrent GETs per facility (Metrc: 10)
         seed (int)                     seeds the random source of error_rate
    DELETE /_sandbox/faults             clear all faults, restore Metrc's limits
    GET|PUT /_sandbox/casing            {"casing": "pascal"} (Metrc's documented keys, the default) or
                                        {"casing": "camel"} (as some states answer)
    POST /_sandbox/reset                wipe all state; body {"seed": "demo"} to reseed
    GET  /_sandbox/state                everything stored (receipts with lines, packages, adjustments,
                                        transfers, deliveries, patients, BioTrack sales, counters)
    POST /_sandbox/packages             upsert packages: [{license, label, item_name, category, unit,
                                        quantity, on_hold?, finished?}] (plant a discrepancy)
    POST /_sandbox/patients             upsert patients: [{patient_license, active, flower_oz, thc_oz,
                                        purchase_days}]
    POST /_sandbox/transfers            add an incoming transfer: {manifest, shipper_license, shipper_name,
                                        recipient_license, packages: [{label, item_name, category, unit,
                                        quantity}]} → {transfer_id, delivery_id}
    POST /_sandbox/deliveries/{id}/receive
                                        receive as a person would in the Metrc UI: {packages: [{label,
                                        received_quantity, status: accepted|rejected, reason}]};
                                        packages not listed are recorded missing
    POST /_sandbox/biotrack/expire-sessions   end every BioTrack session (forces re-login)
    GET  /_sandbox/crm                  every request the CRM endpoint (/crm/...) received; PUT {"secret"}
                                        sets its signing secret; DELETE forgets them (sandbox/crm.py)
    POST /_sandbox/labtests             plant a package's lab result: {label, lab?, tested?, results:
                                        [{type, level?, passed?}]} (GET /labtests/v2/results, sandbox/labtests.py)
"""

from __future__ import annotations

import argparse
import os
import socket
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from sandbox import demo
from sandbox.biotrack_api import BioTrackApi, receive_delivery
from sandbox.crm import CrmEndpoint
from sandbox.faults import Faults, GetLimits
from sandbox.http import Refusal, Reply, Request, Router, message
from sandbox.labtests import LabTests
from sandbox.metrc_api import MetrcApi
from sandbox.store import SandboxStore

MAX_BODY = 1_000_000
RATE_LIMITED = (
    "The limit of API calls allowed has been exceeded. Please pace the usage rate of the API more apart."
)


@dataclass
class SandboxConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port; the bound URL is reported through task_status
    seed: str | None = None
    casing: str = "pascal"  # Metrc answers: "pascal" as documented, "camel" as some states answer


@dataclass
class SandboxHandle:
    """What ``serve`` hands back once listening."""

    url: str
    app: SandboxApp
    cancel_scope: trio.CancelScope = field(repr=False)

    @property
    def store(self) -> SandboxStore:
        return self.app.store

    @property
    def faults(self) -> Faults:
        return self.app.faults

    def stop(self) -> None:
        self.cancel_scope.cancel()


class SandboxApp:
    def __init__(self, store: SandboxStore, casing: str = "pascal") -> None:
        self.store = store
        self.faults = Faults()
        self.limits = GetLimits()
        self.metrc = MetrcApi(store, casing)
        self.biotrack = BioTrackApi(store)
        self.router = Router()
        self.metrc.routes(self.router)
        self.biotrack.routes(self.router)
        # issue 16: a CRM webhook receiver and Metrc lab results (modules of their own)
        self.crm = CrmEndpoint()
        self.crm.routes(self.router)
        self.labtests = LabTests(self.metrc)
        self.labtests.routes(self.router)
        self.admin = Router()
        self.crm.admin_routes(self.admin)
        self.labtests.admin_routes(self.admin)
        a = self.admin.add
        a("GET", "/_sandbox", lambda req: Reply(200, (__doc__ or "").encode(), content_type="text/plain"))
        a("GET", "/_sandbox/faults", lambda req: Reply(200, self.faults.as_json()))
        a("PUT", "/_sandbox/faults", self._set_faults)
        a("POST", "/_sandbox/faults", self._set_faults)
        a("DELETE", "/_sandbox/faults", self._clear_faults)
        a("POST", "/_sandbox/reset", self._reset)
        a("GET", "/_sandbox/casing", lambda req: Reply(200, {"casing": self.metrc.casing}))
        a("PUT", "/_sandbox/casing", self._set_casing)
        a(
            "GET",
            "/_sandbox/state",
            lambda req: Reply(200, self.store.dump() | {"faults": self.faults.as_json()}),
        )
        a("POST", "/_sandbox/packages", self._upsert_packages)
        a("POST", "/_sandbox/patients", self._upsert_patients)
        a("POST", "/_sandbox/transfers", self._add_transfer)
        a("POST", "/_sandbox/deliveries/{id}/receive", self._receive)
        a(
            "POST",
            "/_sandbox/biotrack/expire-sessions",
            lambda req: Reply(200, {"expired": self.biotrack.expire_sessions()}),
        )

    # -- ASGI --------------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            body += event.get("body", b"")
            if len(body) > MAX_BODY:
                await self._send(send, message(413, "The request body is too large."))
                return
            if not event.get("more_body"):
                break
        req = Request.from_scope(scope, body)
        if req.path == "/_sandbox" or req.path.startswith("/_sandbox/"):
            await self._send(send, self._dispatch(self.admin, req))
            return
        reply = await self._api(req, scope)
        if reply is not None:
            await self._send(send, reply)

    async def _api(self, req: Request, scope: dict[str, Any]) -> Reply | None:
        faults = self.faults
        if faults.in_outage():
            faults.outage_refusals += 1
            return message(503, "The service is temporarily unavailable (sandbox outage).")
        limit_key = None
        if req.method == "GET":
            limit_key = req.query.get("licensenumber") or (req.basic_auth() or ("", ""))[1] or "anonymous"
            if not self.limits.admit(
                limit_key, time.monotonic(), faults.get_rate_per_second, faults.get_concurrency
            ):
                faults.rate_limited += 1
                limit_key = None
                # M6: the reproduced sentence; no rate-limit headers are documented, so none are sent
                return self.metrc._cased(lambda r: message(429, RATE_LIMITED))(req)
        try:
            if faults.latency_ms:
                await trio.sleep(faults.latency_ms / 1000)
            if faults.should_error():
                faults.errors_injected += 1
                return message(500, "An error has occurred (sandbox injected fault).")
            reply = self._dispatch(self.router, req)
            if faults.should_drop(req.method):
                # The request has been applied; now lose the answer.
                faults.dropped += 1
                if _abort_connection(scope):
                    return None
            return reply
        finally:
            if limit_key is not None:
                self.limits.release(limit_key)

    def _dispatch(self, router: Router, req: Request) -> Reply:
        handler, params, known = router.match(req.method, req.path)
        if handler is None:
            if known:
                return message(405, f"The requested resource does not support http method '{req.method}'.")
            return message(404, f"No HTTP resource was found that matches the request URI {req.path!r}.")
        req.params = params
        try:
            return handler(req)
        except Refusal as refusal:
            return refusal.reply

    @staticmethod
    async def _send(send: Any, reply: Reply) -> None:
        payload = reply.encoded()
        headers = [(b"content-length", str(len(payload)).encode())]
        if payload:
            headers.append((b"content-type", reply.content_type.encode()))
        headers += [(k.encode(), v.encode()) for k, v in reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    # -- admin -------------------------------------------------------------------------------------------

    def _set_faults(self, req: Request) -> Reply:
        try:
            patch = req.json() or {}
        except ValueError:
            return message(400, "The body must be a JSON object.")
        if not isinstance(patch, dict):
            return message(400, "The body must be a JSON object.")
        problems = self.faults.update(patch)
        if problems:
            return Reply(400, {"message": "; ".join(problems)})
        return Reply(200, self.faults.as_json())

    def _set_casing(self, req: Request) -> Reply:
        try:
            body = req.json() or {}
        except ValueError:
            body = {}
        casing = body.get("casing") if isinstance(body, dict) else None
        if casing not in ("pascal", "camel"):
            return message(400, 'The body must be {"casing": "pascal"} or {"casing": "camel"}.')
        self.metrc.casing = casing
        return Reply(200, {"casing": casing})

    def _clear_faults(self, req: Request) -> Reply:
        self.faults = Faults()
        return Reply(200, self.faults.as_json())

    def _reset(self, req: Request) -> Reply:
        try:
            body = req.json() or {}
        except ValueError:
            body = {}
        self.store.reset()
        self.faults = Faults()
        self.limits = GetLimits()
        if isinstance(body, dict) and body.get("seed") == "demo":
            self.store.seed_demo()
        return Reply(200, {"reset": True, "seed": body.get("seed") if isinstance(body, dict) else None})

    def _upsert_packages(self, req: Request) -> Reply:
        rows = req.json()
        if not isinstance(rows, list):
            return message(400, "The body must be a JSON array.")
        with self.store.transaction():
            for row in rows:
                self.store.upsert_package(
                    row.get("license", demo.METRC_LICENSE),
                    row["label"],
                    row.get("item_name", "Sandbox Item"),
                    row.get("category", "Buds"),
                    row.get("unit", "Grams"),
                    float(row["quantity"]),
                    on_hold=bool(row.get("on_hold", False)),
                    finished=bool(row.get("finished", False)),
                )
        return Reply(200, {"upserted": len(rows)})

    def _upsert_patients(self, req: Request) -> Reply:
        rows = req.json()
        if not isinstance(rows, list):
            return message(400, "The body must be a JSON array.")
        with self.store.transaction() as db:
            for row in rows:
                db.execute(
                    "INSERT OR REPLACE INTO patients VALUES (?, ?, ?, ?, ?)",
                    (
                        row["patient_license"],
                        int(row.get("active", True)),
                        float(row.get("flower_oz", 2.0)),
                        float(row.get("thc_oz", 0.28)),
                        float(row.get("purchase_days", 30)),
                    ),
                )
        return Reply(200, {"upserted": len(rows)})

    def _add_transfer(self, req: Request) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            return message(400, "The body must be a JSON object.")
        from datetime import timedelta

        from sandbox.store import utc_now

        with self.store.transaction():
            transfer_id = self.store.add_incoming_transfer(
                body["manifest"],
                body.get("shipper_license", demo.SHIPPER_LICENSE),
                body.get("shipper_name", demo.SHIPPER_NAME),
                body.get("recipient_license", demo.METRC_LICENSE),
                [
                    (
                        p["label"],
                        p.get("item_name", "Sandbox Item"),
                        p.get("category", "Buds"),
                        p.get("unit", "Each"),
                        float(p["quantity"]),
                    )
                    for p in body.get("packages", [])
                ],
                arrival=utc_now() + timedelta(hours=1),
            )
            delivery = self.store.one("SELECT id FROM deliveries WHERE transfer_id = ?", transfer_id)
        return Reply(200, {"transfer_id": transfer_id, "delivery_id": delivery["id"] if delivery else None})

    def _receive(self, req: Request) -> Reply:
        body = req.json()
        lines = body.get("packages") if isinstance(body, dict) else None
        if not isinstance(lines, list) or not req.params["id"].isdigit():
            return message(400, "Body must be {packages: [...]}.")
        with self.store.transaction():
            delivery = self.store.one(
                "SELECT d.*, t.manifest_number, t.shipper_license, t.shipper_name FROM deliveries d "
                "JOIN transfers t ON t.id = d.transfer_id WHERE d.id = ?",
                int(req.params["id"]),
            )
            if delivery is None:
                return message(404, "Delivery not found.")
            if delivery["received_at"] is not None:
                return message(400, "Delivery has already been received.")
            problem = receive_delivery(
                self.store,
                delivery,
                [
                    (p["label"], p.get("received_quantity"), p.get("status", "accepted"), p.get("reason"))
                    for p in lines
                ],
            )
            if problem:
                raise Refusal(message(400, problem))
        return Reply(200, {"received": True})


def _abort_connection(scope: dict[str, Any]) -> bool:
    """Shut down the TCP connection a request arrived on, without answering it.

    ASGI gives an app no handle on its socket, so find it among this process's descriptors by its two
    addresses and shut it down; the client sees the peer close before any response byte.
    """
    client, server = scope.get("client"), scope.get("server")
    if not client or not server:
        return False
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 4096))
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            peer, local = sock.getpeername()[:2], sock.getsockname()[:2]
            if tuple(peer) == tuple(client)[:2] and tuple(local) == tuple(server)[:2]:
                sock.shutdown(socket.SHUT_RDWR)
                return True
        except OSError:
            continue
        finally:
            sock.close()
    return False


async def serve(
    config: SandboxConfig, *, task_status: trio.TaskStatus[SandboxHandle] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the sandbox until cancelled; reports a SandboxHandle (with the bound URL) once listening."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SandboxStore(config.data_dir / "sandbox.sqlite3")
    try:
        if config.seed == "demo":
            store.seed_demo()
        elif config.seed is not None:
            raise ValueError(f"unknown seed {config.seed!r}; the only seed is 'demo'")
        app = SandboxApp(store, config.casing)
        # bound here, not by hypercorn: a port already taken raises OSError(EADDRINUSE) with the socket
        # closed (hypercorn would leave it to the garbage collector), so a caller can try another port
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.create_server((config.host, config.port), family=family)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hc = HypercornConfig()
        hc.bind = [f"fd://{sock.detach()}"]  # hypercorn's listener owns and closes it from here
        hc.accesslog = None
        hc.errorlog = None
        hc.loglevel = "WARNING"
        hc.graceful_timeout = 0.5
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(_serve_app, app, hc)
                url = binds[0] if binds else f"http://{config.host}:{config.port}"
                task_status.started(SandboxHandle(url=url, app=app, cancel_scope=scope))
    finally:
        store.close()


async def _serve_app(
    app: SandboxApp, hc: HypercornConfig, *, task_status: trio.TaskStatus[list[str]]
) -> None:
    await hypercorn_serve(app, hc, task_status=task_status, mode="asgi")  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="storehub sandbox", description="Metrc v2 / BioTrack emulator")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data", type=Path, default=Path("sandbox-data"))
    parser.add_argument("--seed", choices=["demo"], default=None)
    parser.add_argument("--casing", choices=["pascal", "camel"], default="pascal")
    args = parser.parse_args(argv)
    config = SandboxConfig(
        data_dir=args.data, host=args.host, port=args.port, seed=args.seed, casing=args.casing
    )

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(serve, config)
            print(f"sandbox listening on {handle.url} (data in {config.data_dir})", flush=True)
            print(
                f"  Metrc:    vendor key {demo.METRC_VENDOR_KEY}, user key {demo.METRC_USER_KEY}, licence {demo.METRC_LICENSE}"
            )
            print(
                f"  BioTrack: {handle.url}/biotrack/serverjson.asp licence {demo.BIOTRACK_LICENSE} user {demo.BIOTRACK_USERNAME}"
            )
            print(f"  admin:    {handle.url}/_sandbox", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"storehub sandbox: {exc}", file=sys.stderr)
        return 1
    return 0
