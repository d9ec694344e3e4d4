"""The REST side of online orders: the signed channel boundary (``POST /api/v1/orders``,
``GET /api/v1/menu``), the back office's views, and the demo's "submit a signed order"."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import httpx
import lmdb

from hub.config import ChannelSection
from hub.domain import orders as core
from hub.domain import signing
from hub.domain.catalog import Product
from hub.errors import BadRequest, Conflict, HubError, NotAuthenticated
from hub.http_server import HttpRequest, HttpResponse, RouteTable, require_staff
from hub.orders import store as ostore
from hub.orders.service import (
    accept_in_txn,
    ctx_of,
    decode_intake,
    free_map_in_txn,
    limits_view,
    order_limit_items,
    save_in_txn,
)
from hub.orders.views import order_view, queue_view
from hub.sale import inventory as inv
from hub.sale.context import Refused

if TYPE_CHECKING:
    from hub.app import Hub

# the REST routes this module serves; hub/wiring.py joins it into the hub's table
ROUTES = RouteTable()


def _error(status: int, code: str, message: str, field: str | None = None) -> HttpResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    return HttpResponse.json(body, status)


def _channel(hub: Hub, req: HttpRequest) -> ChannelSection:
    """The channel behind a signed request, or NotAuthenticated with the reason."""
    ctx = ctx_of(hub)
    channel = ctx.channels.get(req.headers.get(signing.HEADER_CHANNEL, ""))
    if channel is None:
        raise NotAuthenticated(
            "Unknown channel: send X-Storehub-Channel as configured.", code="unknown_channel"
        )
    refusal = signing.verify(
        channel.secret,
        req.headers.get(signing.HEADER_TIMESTAMP, ""),
        req.headers.get(signing.HEADER_SIGNATURE, ""),
        req.body,
        time.time(),
        ctx.settings.max_skew_seconds,
    )
    if refusal is not None:
        raise NotAuthenticated(refusal.message, code=refusal.code)
    return channel


def products_of(hub: Hub, intake: core.OrderIntake) -> dict[str, Product | None]:
    out: dict[str, Product | None] = {}
    for ln in intake.lines:
        key = ln.product_id or ln.sku
        if key and key not in out:
            out[key] = inv.product(hub.store, key) or (
                inv.product_by_barcode(hub.store, key) if ln.sku else None
            )
    return out


@ROUTES.route("POST", "/api/v1/orders")
async def post_order(hub: Hub, req: HttpRequest) -> HttpResponse:
    try:
        channel = _channel(hub, req)
    except NotAuthenticated as exc:
        return _error(401, exc.code, exc.message)
    try:
        intake = decode_intake(req.body)
    except BadRequest as exc:
        return _error(400, "invalid", exc.message, exc.field)
    products = products_of(hub, intake)
    problem = core.intake_problem(intake, products)
    if problem is not None:
        return _error(400, "invalid", problem[1], problem[0])
    try:
        status, answer = await intake_order(
            hub, channel, req.headers.get(signing.HEADER_SIGNATURE, ""), req.body, intake, products
        )
    except HubError as exc:
        return _error(401 if exc.code == "replayed" else 409, exc.code, exc.message)
    return HttpResponse.json(answer, status)


async def intake_order(
    hub: Hub,
    channel: ChannelSection,
    sig: str,
    body: bytes,
    intake: core.OrderIntake,
    products: dict[str, Product | None],
) -> tuple[int, dict[str, Any]]:
    ctx = ctx_of(hub)
    store = hub.store
    body_hash = hashlib.sha256(body).hexdigest()
    now = datetime.now(UTC)
    today = ctx.today()
    known = {k: v for k, v in products.items() if v is not None}

    def fn(txn: lmdb.Transaction) -> tuple[int, dict[str, Any]]:
        seen = ostore.seen_signature(txn, store, channel.id, sig, now.timestamp())
        existing = ostore.by_external_in_txn(txn, store, channel.id, intake.external_id)
        if seen and (existing is None or existing.body_hash != body_hash):
            raise NotAuthenticated("This signed request was already received (a replay).", code="replayed")
        # the identical request again (a channel resending after its timeout) is answered as a retry: the
        # order it made, 200, nothing changed; a different body under the same id stays a 409
        if existing is not None:
            if existing.body_hash != body_hash:
                raise Conflict(
                    f"Order {intake.external_id!r} was already received with a different body.",
                    code="conflict",
                )
            return 200, _answer(txn, hub, existing, known, now, today)
        order = core.new_order(ostore.next_order_id(txn, store), channel.id, body_hash, intake, known, now)
        save_in_txn(txn, hub, None, order, by=f"channel:{channel.id}", now=now)
        if ctx.settings.auto_accept:
            try:
                order = accept_in_txn(txn, hub, order.id, by=f"channel:{channel.id}", register="", now=now)
            except Refused:
                pass  # stays received; the queue flags what is missing
        return 201, _answer(txn, hub, order, known, now, today)

    try:
        return await hub.writer.write(fn, label="order_intake")  # type: ignore[no-any-return]
    finally:
        ctx.changed([])  # a new order is never ready: the registers' list stays as it is


def _answer(
    txn: lmdb.Transaction,
    hub: Hub,
    order: core.Order,
    products: dict[str, Product],
    now: datetime,
    today: Any,
) -> dict[str, Any]:
    free = free_map_in_txn(txn, hub, {ln.product_id for ln in order.lines}, today, except_order=order.id)
    by_id = {p.id: p for p in products.values()}
    limits: dict[str, Any] = {"checked": False}
    if order.customer.store_customer_id:
        limits = limits_view(hub, order.customer.store_customer_id, order_limit_items(order, by_id), now, txn)
    return {
        "order_id": order.id,
        "external_id": order.external_id,
        "status": order.state,
        "lines": core.availability(order, free),
        "limits": limits,
    }


@ROUTES.route("GET", "/api/v1/menu")
async def get_menu(hub: Hub, req: HttpRequest) -> HttpResponse:
    try:
        _channel(hub, req)
    except NotAuthenticated as exc:
        return _error(401, exc.code, exc.message)
    menu = hub.services.orders_menu
    assert menu is not None  # wired with the orders, whose context was found above
    await menu.refresh(hub.store, ctx_of(hub).today())
    since = parse_qs(req.query).get("since", [""])[0]
    etag = menu.etag + (f";since={since}" if since else "")
    if req.headers.get("if-none-match", "") == etag:
        return HttpResponse(304, b"", headers={"etag": etag})
    body, gzipped = menu.answer(since, gzipped="gzip" in req.headers.get("accept-encoding", ""))
    resp = HttpResponse(200, body, "application/json")
    if gzipped:
        resp.headers["content-encoding"] = "gzip"
    resp.headers["vary"] = "accept-encoding"
    resp.headers["etag"] = etag
    resp.headers["cache-control"] = "no-cache"
    return resp


@ROUTES.route("GET", "/api/v1/orders/*")
async def get_order(hub: Hub, req: HttpRequest) -> HttpResponse:
    """A channel reads one of its orders back (the status, if a callback was missed)."""
    try:
        channel = _channel(hub, req)
    except NotAuthenticated as exc:
        return _error(401, exc.code, exc.message)
    oid = req.path.rsplit("/", 1)[1]
    o = ostore.order(hub.store, oid)
    if o is None or o.channel != channel.id:
        return _error(404, "not_found", f"There is no order {oid!r} from this channel.")
    return HttpResponse.json(order_view(hub, o, datetime.now(UTC), detail=True))


# ---------------------------------------------------------------------------------------------- back office
@ROUTES.route("GET", "/api/orders")
async def list_orders(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "budtender")
    return HttpResponse.json({"orders": queue_view(hub)})


@ROUTES.route("GET", "/api/orders/notices")
async def list_notices(hub: Hub, req: HttpRequest) -> HttpResponse:
    """The notices sent or waiting (the demo's sink): what a customer was told, and when."""
    require_staff(hub, req, "manager")
    out = []
    for e in reversed(ostore.deliveries(hub.store, "notices", unsent_only=False, limit=200)):
        out.append(
            {
                "seq": e.seq,
                "order_id": e.order_id,
                "kind": e.kind,
                "route": e.route,
                "to": e.to,
                "subject": e.subject,
                "text": e.payload.decode(),
                "state": e.state,
                "created_at": e.created_at.isoformat(),
                "sent_at": e.sent_at.isoformat() if e.sent_at else None,
                "last_error": e.last_error,
            }
        )
    return HttpResponse.json({"notices": out})


# ---------------------------------------------------------------------------------------------- demo
DEMO_CHANNEL = "demo-web"
DEMO_SECRET = "demo-channel-secret-not-for-production"


def demo_order_body(hub: Hub, n: int, promised_in: timedelta = timedelta(hours=2)) -> bytes:
    """A plausible web order over the demo catalogue: a pre-roll pack, an edible and some bulk flower."""
    lines: list[dict[str, Any]] = []
    products = sorted(inv.all_products(hub.store), key=lambda p: p.id)
    today = ctx_of(hub).today()
    with hub.store.read() as txn:
        for category, qty in (("pre-roll", 1), ("edible", 1), ("flower", 3500)):
            for p in products:
                if p.category != category or not p.active:
                    continue
                each = p.sold_by == "each"
                want = 1 if each else qty
                if (
                    each == (category != "flower")
                    and ostore.free_in_txn(txn, hub.store, p, today) >= want * 3
                ):
                    lines.append(
                        {"product_id": p.id, **({"quantity": want} if each else {"weight_mg": want})}
                    )
                    break
    body = {
        "external_id": f"web-{n}-{secrets.token_hex(3)}",
        "customer": {
            "name": "Dana Doe",
            "birth_date": "1990-04-12",
            "email": "dana@example.com",
            "phone": "+15555550123",
        },
        "lines": lines,
        "fulfilment": "pickup" if n % 2 else "curbside",
        "promised_at": (datetime.now(UTC) + promised_in).isoformat(),
        "substitution": "similar",
        "notes": "Demo order",
    }
    return json.dumps(body).encode()


async def post_signed(base_url: str, channel: str, secret: str, body: bytes) -> httpx.Response:
    headers = signing.signed_headers(channel, secret, int(time.time()), body)
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(f"{base_url}/api/v1/orders", content=body, headers=headers)


@ROUTES.route("POST", "/api/demo/orders")
async def demo_submit(hub: Hub, req: HttpRequest) -> HttpResponse:
    """The demo panel's button: a new web order, signed with the demo channel's key and sent to the intake
    over HTTP like any channel would."""
    if not hub.config.server.demo or DEMO_CHANNEL not in ctx_of(hub).channels:
        raise BadRequest("Only the demo store takes demo orders.")
    secret = ctx_of(hub).channels[DEMO_CHANNEL].secret
    body = demo_order_body(hub, int(time.time()))
    host = hub.config.server.host if hub.config.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    scheme = "https" if hub.config.server.tls_cert else "http"
    r = await post_signed(f"{scheme}://{host}:{hub.http_port}", DEMO_CHANNEL, secret, body)
    return HttpResponse(r.status_code, r.content, "application/json")
