"""The HTTP listener (hypercorn, trio worker): the browser pages, /healthz, /metrics and REST.

A small hand-rolled ASGI app: the hub serves a handful of routes and static files and needs no framework.
Each feature module declares its REST routes in a :class:`RouteTable`; hub/wiring.py joins them.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

import msgspec
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from hub.access import ROLE_RANK, token_hash
from hub.actor import QuarantinedMessage
from hub.errors import BadRequest, Forbidden, HubError, NotAuthenticated
from hub.live.frames import MAX_JSON_DEPTH, explain, json_depth_exceeds
from hub.metrics import CONTENT_TYPE
from hub.store.env import decode

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("hub.http")
WEB_UI = Path(__file__).resolve().parent.parent / "web_ui"
T = TypeVar("T")


class HttpRequest:
    def __init__(self, scope: dict[str, Any], body: bytes) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = scope.get("query_string", b"").decode()
        self.headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        self.body = body

    def json(self) -> Any:
        if json_depth_exceeds(self.body, MAX_JSON_DEPTH):  # before decoding: no RecursionError, no 500
            raise BadRequest(f"The body nests deeper than {MAX_JSON_DEPTH} levels.")
        return json.loads(self.body or b"null")

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or a clear refusal (not JSON, or JSON but not an object)."""
        try:
            body = self.json()
        except ValueError:
            raise BadRequest("The body is not JSON.") from None
        if not isinstance(body, dict):
            raise BadRequest("The body is a JSON object.")
        return body

    def decode(self, type_: type[T]) -> T:
        """The body as a bounded message type (msgspec ``Meta``), refused with the field named."""
        if json_depth_exceeds(self.body, MAX_JSON_DEPTH):
            raise BadRequest(f"The body nests deeper than {MAX_JSON_DEPTH} levels.")
        try:
            return msgspec.json.decode(self.body or b"{}", type=type_)
        except msgspec.ValidationError as exc:
            field, text = explain(str(exc))
            raise BadRequest(text, field=field) from None
        except msgspec.DecodeError:
            raise BadRequest("The body must be JSON.") from None


class HttpResponse:
    def __init__(
        self,
        status: int = 200,
        body: bytes | str = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type
        self.headers = headers or {}

    @classmethod
    def json(cls, value: Any, status: int = 200) -> HttpResponse:
        return cls(status, msgspec.json.encode(value), "application/json")


Route = Callable[["Hub", HttpRequest], Awaitable[HttpResponse]]


class RouteTable:
    """The REST routes one module serves (``ROUTES = RouteTable()`` with ``@ROUTES.route("GET", path)``);
    hub/wiring.py joins the tables of the features a hub runs. A path ending in '/*' matches the prefix."""

    def __init__(self) -> None:
        self.exact: dict[tuple[str, str], Route] = {}
        self.prefix: list[tuple[str, str, Route]] = []

    def route(self, method: str, path: str) -> Callable[[Route], Route]:
        def add(fn: Route) -> Route:
            if path.endswith("/*"):
                self.prefix.append((method, path[:-1], fn))
            elif (method, path) in self.exact:
                raise ValueError(f"{method} {path} has two routes")
            else:
                self.exact[(method, path)] = fn
            return fn

        return add

    @classmethod
    def join(cls, *tables: RouteTable) -> RouteTable:
        joined = cls()
        for table in tables:
            for key, fn in table.exact.items():
                if key in joined.exact:
                    raise ValueError(f"{key[0]} {key[1]} has two routes")
                joined.exact[key] = fn
            joined.prefix += table.prefix
        return joined

    def find(self, method: str, path: str) -> Route | None:
        found = self.exact.get((method, path))
        if found is None:
            for m, prefix, fn in self.prefix:
                if method == m and path.startswith(prefix):
                    return fn
        return found

    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield from self.exact
        for method, prefix, _ in self.prefix:
            yield method, prefix + "*"


# the hub's own routes (health, metrics, the hub's summary), served whichever features run
ROUTES = RouteTable()


@ROUTES.route("GET", "/healthz")
async def healthz(hub: Hub, req: HttpRequest) -> HttpResponse:
    sup = hub.supervisor
    actors = {} if sup is None else {name: c.running for name, c in sup.children.items()}
    ok = hub.ready and bool(actors) and all(actors.values())
    body: dict[str, Any] = {"status": "ok" if ok else "starting", "store": hub.ready, "actors": actors}
    problem = hub.writer.storage_problem if hub.is_open else None
    if problem is not None:  # the store cannot write: say why (the actors are up and wait for space)
        ok = False
        body.update(status=problem.code, reason=problem.message)
    return HttpResponse.json(body, 200 if ok else 503)


@ROUTES.route("GET", "/metrics")
async def metrics(hub: Hub, req: HttpRequest) -> HttpResponse:
    hub.refresh_gauges()
    return HttpResponse(200, hub.metrics.render(), CONTENT_TYPE)


@ROUTES.route("GET", "/api/hub")
async def hub_info(hub: Hub, req: HttpRequest) -> HttpResponse:
    s = hub.config.server
    return HttpResponse.json(
        {
            "store": hub.config.store.name,
            "jurisdiction": hub.config.store.jurisdiction,
            "time_zone": hub.config.store.time_zone,  # pages show times in the store's zone
            "ws_port": hub.ws_port,
            "ws_scheme": "wss" if s.tls_cert else "ws",
            "demo": s.demo,
            "registers": [{"id": r.id, "name": r.name or r.id} for r in hub.config.registers],
        }
    )


def _static(path: str) -> HttpResponse:
    if path in ("", "/"):
        return HttpResponse(302, b"", headers={"location": "/register/"})
    rel = path.lstrip("/")
    if rel.endswith("/") or rel == "":
        rel += "index.html"
    target = (WEB_UI / rel).resolve()
    if WEB_UI not in target.parents or not target.is_file() or target.suffix == ".py":
        return HttpResponse(404, "not found")
    ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript",):
        ctype += "; charset=utf-8"
    return HttpResponse(200, target.read_bytes(), ctype, {"cache-control": "no-cache"})


def make_app(hub: Hub) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > 8 << 20:
                await _send(send, HttpResponse(413, "request too large"))
                return
        req = HttpRequest(scope, body)
        try:
            handler = hub.services.routes.find(req.method, req.path)
            if handler is not None:
                resp = await handler(hub, req)
            elif req.method in ("GET", "HEAD"):
                resp = (
                    await trio.to_thread.run_sync(_static, req.path)
                    if req.path.startswith("/vendor/")
                    else _static(req.path)
                )
            else:
                resp = HttpResponse(405, "method not allowed")
        except Exception as exc:
            if isinstance(exc, HubError):
                status = {
                    "not_logged_in": 401,
                    "forbidden": 403,
                    "not_found": 404,
                    "storage_full": 503,
                    "storage_error": 503,
                }.get(exc.code, 400)
                answer = {"code": exc.code, "message": exc.message}
                if exc.field:
                    answer["field"] = exc.field
                resp = HttpResponse.json(answer, status)
            else:
                log.exception("HTTP %s %s failed", req.method, req.path)
                resp = HttpResponse.json(
                    {"code": "internal_error", "message": "The hub could not do that."}, 500
                )
        await _send(send, resp)

    return app


async def _send(send: Any, resp: HttpResponse) -> None:
    headers = [
        (b"content-type", resp.content_type.encode()),
        (b"content-length", str(len(resp.body)).encode()),
    ]
    headers += [(k.encode(), v.encode()) for k, v in resp.headers.items()]
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    await send({"type": "http.response.body", "body": resp.body})


async def serve_http(hub: Hub, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    s = hub.config.server
    cfg = HyperConfig()
    host = s.host if ":" not in s.host else f"[{s.host}]"
    cfg.bind = [f"{host}:{s.http_port}"]
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("hypercorn.error")
    cfg.graceful_timeout = 1.0
    if s.tls_cert:
        cfg.certfile, cfg.keyfile = s.tls_cert, s.tls_key
    async with trio.open_nursery() as nursery:
        bound: list[str] = await nursery.start(
            lambda task_status: serve(make_app(hub), cfg, task_status=task_status)
        )
        port = int(bound[0].rsplit(":", 1)[1].rstrip("/"))
        task_status.started(port)


def query_int(req: HttpRequest, name: str, default: int | None, lo: int, hi: int) -> int | None:
    """A whole number from the query string, bounded; refused with the field named (never a 500)."""
    raw = parse_qs(req.query).get(name, [""])[-1]
    if raw == "":
        return default
    if not re.fullmatch(r"-?[0-9]{1,19}", raw) or not lo <= int(raw) <= hi:
        raise BadRequest(f"{name} is a whole number from {lo} to {hi}.", field=name)
    return int(raw)


def require_staff(hub: Hub, req: HttpRequest, role: str = "budtender") -> Any:
    """The staff session behind ``Authorization: Bearer <session token>`` (the token a WebSocket login
    returned), checked for ``role``. Raises NotAuthenticated / Forbidden (answered 401 / 403)."""

    if "token" in parse_qs(req.query):
        # a token in a URL lands in browser history, proxies' logs and Referer headers: header or cookie only
        raise NotAuthenticated(
            "Send the session token in the Authorization header, never in the address.", code="token_in_url"
        )
    header = req.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token:
        token = _cookie(req.headers.get("cookie", ""), "storehub_session")
    session = hub.sessions.get(token_hash(token)) if token else None
    actor = hub.registers.get(session.register_id) if session is not None else None
    # the token is good only while it is the register's live session (not logged out, not idle too long)
    if session is None or actor is None or actor.live_session() is not session:
        raise NotAuthenticated("Log in first.", code="not_logged_in")
    if ROLE_RANK.get(session.role, 0) < ROLE_RANK[role]:
        raise Forbidden(f"This needs a {role} or above.")
    session.last_seen = datetime.now(UTC)  # using the back office keeps its session alive
    return session


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v.strip()
    return ""


@ROUTES.route("GET", "/api/quarantine")
async def quarantine(hub: Hub, req: HttpRequest) -> HttpResponse:
    """Messages that crashed an actor twice and were set aside, for the manager to look at."""

    require_staff(hub, req, "manager")
    with hub.store.read() as txn:
        items = [decode(v, QuarantinedMessage) for _, v in txn.cursor(db=hub.store.db("quarantine"))]
    return HttpResponse.json({"quarantined": items})


@ROUTES.route("GET", "/api/devices")
async def device_health(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "budtender")
    # a DeviceStatus encodes as its view
    return HttpResponse.json({"devices": list(hub.services.device_health.values())})
