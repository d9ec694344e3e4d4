"""Order handling: every change is one writer transaction that loads the order, asks the core
(``hub.domain.orders``) and stores the answer with its audit entry, callback and notices
(``hub.orders.store.save_order``). The picker's and the register's commands are thin wrappers around it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec
import trio

from drivers.zpl import render_bag_label
from hub.commands import Request, handles
from hub.config import ChannelSection, NoticesSection, OrdersSection
from hub.domain import cart as carts
from hub.domain import orders as core
from hub.domain.cart import WeightReading
from hub.domain.catalog import Customer, Product, Refusal
from hub.domain.devices import BagLabel, PrintBagLabel
from hub.domain.limits.engine import LimitCustomer, LimitItem, evaluate, history_usage, history_window_start
from hub.domain.orders import Order
from hub.domain.scan_classify import classify
from hub.errors import BadRequest, HubError, NotFound
from hub.orders import protocol as op
from hub.orders import store as ostore
from hub.orders.metrics import observe_pick
from hub.sale import inventory as inv
from hub.sale.service import (
    Refused,
    _limit_guard,
    _save,
    paired_device,
    sale_of,
)
from hub.sale.service import (
    ctx_of as sale_ctx_of,
)
from hub.store.env import tget

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("hub.orders")


@dataclass
class OrdersContext:
    hub: Hub
    channels: dict[str, ChannelSection]
    settings: OrdersSection
    notices: NoticesSection
    generation: int = 0
    wakers: list[Callable[[], None]] = field(default_factory=list)
    _view: tuple[int, list[dict[str, Any]]] | None = None

    _ready: frozenset[str] = frozenset()

    def changed(self, orders: list[Order] | None = None) -> None:
        """Orders changed (committed): refresh the pickers' screens (and the registers' when the list of
        ready orders changed), wake the senders. Without ``orders`` the ready list is read again."""
        self.generation += 1
        if orders is None:
            ready = frozenset(o.id for o in ostore.open_orders(self.hub.store) if o.state == "ready")
        else:
            now_ready = set(self._ready)
            for o in orders:
                if o.state == "ready":
                    now_ready.add(o.id)
                else:
                    now_ready.discard(o.id)
            ready = frozenset(now_ready)
        registers_too = ready != self._ready
        self._ready = ready
        for actor in self.hub.registers.values():
            if registers_too or actor.config.kind == "picker":
                actor.publish()
        for wake in self.wakers:
            wake()

    def any_ready(self) -> bool:
        return bool(self._ready)

    def today(self) -> date:
        return sale_ctx_of(self.hub).today()


def ctx_of(hub: Hub) -> OrdersContext:
    return hub.extensions["orders"]  # type: ignore[no-any-return]


def refused(r: Refusal) -> Refused:
    return Refused(r.message, code=r.code)


# ---------------------------------------------------------------------------------------------- one change
def change_in_txn(
    txn: lmdb.Transaction,
    hub: Hub,
    order_id: str,
    decide: Callable[[Order], Order | Refusal],
    *,
    by: str,
    register: str = "",
    event: str = "",
    detail: dict[str, Any] | None = None,
    notice_kind: str = "",
    now: datetime,
) -> Order:
    store = hub.store
    old = ostore.order_in_txn(txn, store, order_id)
    if old is None:
        raise NotFound(f"There is no order {order_id!r}.")
    new = decide(old)
    if isinstance(new, Refusal):
        raise refused(new)
    if new is old:
        return old
    save_in_txn(
        txn,
        hub,
        old,
        new,
        by=by,
        register=register,
        event=event,
        detail=detail,
        notice_kind=notice_kind,
        now=now,
    )
    return new


def save_in_txn(
    txn: lmdb.Transaction,
    hub: Hub,
    old: Order | None,
    new: Order,
    *,
    by: str,
    register: str = "",
    event: str = "",
    detail: dict[str, Any] | None = None,
    notice_kind: str = "",
    now: datetime,
) -> None:
    ctx = ctx_of(hub)
    if not notice_kind and (old is None or old.state != new.state):
        notice_kind = {
            "accepted": "accepted",
            "ready": "ready",
            "cancelled": "cancelled",
            "expired": "cancelled",
        }.get(new.state, "")
    n = ctx.notices
    notices = ostore.notices_for(new, notice_kind, n.email != "none", n.sms != "none") if notice_kind else []
    channel = ctx.channels.get(new.channel)
    ostore.save_order(
        txn,
        hub.store,
        old,
        new,
        by=by,
        register=register,
        event=event,
        detail=detail,
        callback_to=channel.callback_url if channel is not None else "",
        notices=notices,
        now=now,
    )


async def run_change(req: Request, fn: Callable[[lmdb.Transaction], Any]) -> Any:
    try:
        return await req.commit(fn)
    finally:
        ctx_of(req.hub).changed()  # the ready list is read again: a handful of open orders


def free_map_in_txn(
    txn: lmdb.Transaction, hub: Hub, product_ids: set[str], today: date, except_order: str = ""
) -> dict[str, int]:
    out = {}
    for pid in product_ids:
        product = inv.product_in_txn(txn, hub.store, pid)
        out[pid] = (
            0
            if product is None
            else ostore.free_in_txn(txn, hub.store, product, today, except_order=except_order)
        )
    return out


def accept_in_txn(
    txn: lmdb.Transaction, hub: Hub, order_id: str, *, by: str, register: str, now: datetime
) -> Order:
    today = ctx_of(hub).today()

    def decide(o: Order) -> Order | Refusal:
        free = free_map_in_txn(txn, hub, {ln.product_id for ln in o.lines}, today, except_order=o.id)
        return core.accept(o, free, now, by)

    return change_in_txn(txn, hub, order_id, decide, by=by, register=register, now=now)


# ---------------------------------------------------------------------------------------------- limits
def limits_view(
    hub: Hub, customer_id: str, items: list[LimitItem], now: datetime, txn: lmdb.Transaction
) -> dict[str, Any]:
    """The limits pre-check for a customer the store knows: which rule the order would exceed."""
    sale = sale_ctx_of(hub)
    known = tget(txn, hub.store, "customers", customer_id.encode(), Customer)
    if known is None:
        return {"checked": False}
    j = sale.jurisdiction
    cls = known.customer_type if known.customer_type in j.classes else "adult"
    age = (
        now.year
        - known.birth_date.year
        - ((now.month, now.day) < (known.birth_date.month, known.birth_date.day))
    )
    who = LimitCustomer(customer_class=cls, age=age)
    since = history_window_start(j, cls, now)
    usage = history_usage(j, who, inv.history(txn, hub.store, known.id, since), now)
    decision = evaluate(j, who, (), items, now, usage=usage)
    return {
        "checked": True,
        "allowed": decision.allowed,
        "exceeded": [v.message for v in decision.violations],
    }


def order_limit_items(
    order: Order, products: dict[str, Product], extra: tuple[Product, int] | None = None
) -> list[LimitItem]:
    rows = [
        (products.get(ln.product_id), ln.picked if ln.short else max(ln.quantity, ln.picked))
        for ln in order.lines
    ]
    if extra is not None:
        rows.append(extra)
    out = []
    for p, qty in rows:
        if p is None or not p.is_cannabis or qty <= 0:
            continue
        line = carts.CartLine(
            line_id=1,
            package_tag="",
            product_id=p.id,
            product_name=p.name,
            brand=p.brand,
            category=p.category,
            sold_by=p.sold_by,
            tax_class=p.tax_class,
            is_cannabis=True,
            unit_price_cents=p.price_cents,
            limits=p.limits,
            quantity=qty if p.sold_by == "each" else 1,
            weight_mg=qty if p.sold_by == "weight" else 0,
        )
        attrs, n = carts.line_limit_attributes(line)
        out.append(LimitItem(attributes=attrs, quantity=n))
    return out


# ---------------------------------------------------------------------------------------------- picker commands
def _by(req: Request) -> str:
    return req.staff_id


@handles(op.AcceptOrder)
async def accept_order(req: Request, msg: op.AcceptOrder) -> Any:
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        o = accept_in_txn(txn, req.hub, msg.order_id, by=_by(req), register=req.register_id, now=now)
        return {"order_id": o.id, "state": o.state}

    return await run_change(req, fn)


@handles(op.CancelOrder, role="technician")
async def cancel_order(req: Request, msg: op.CancelOrder) -> Any:
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            req.hub,
            msg.order_id,
            lambda o: core.cancel(o, now, _by(req), msg.reason),
            by=_by(req),
            register=req.register_id,
            detail={"reason": msg.reason},
            now=now,
        )
        return {"order_id": o.id, "state": o.state}

    return await run_change(req, fn)


@handles(op.ClaimOrder)
async def claim_order(req: Request, msg: op.ClaimOrder) -> Any:
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            req.hub,
            msg.order_id,
            lambda o: core.claim(o, req.register_id, now, _by(req)),
            by=_by(req),
            register=req.register_id,
            now=now,
        )
        return {"order_id": o.id, "state": o.state, "picker": o.picker}

    return await run_change(req, fn)


@handles(op.ReleaseOrder)
async def release_order(req: Request, msg: op.ReleaseOrder) -> Any:
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            req.hub,
            msg.order_id,
            lambda o: core.release(o, req.register_id, now, _by(req)),
            by=_by(req),
            register=req.register_id,
            now=now,
        )
        return {"order_id": o.id, "state": o.state}

    return await run_change(req, fn)


def scale_reading(hub: Hub, register_id: str) -> WeightReading | None:
    """The stable-or-not reading of the scale paired with this picking station (as at the register)."""
    s = sale_ctx_of(hub).scales.get(paired_device(hub, register_id, "scale"))
    if s is None or not s.up:
        return None
    return WeightReading(
        weight_mg=s.weight_mg, stable=s.stable, scale_id=s.device, certificate=s.certificate, read_at=s.at
    )


def tag_of(data: str) -> str:
    sc = classify(data)
    if sc.kind in ("metrc_package", "biotrack_barcode"):
        return sc.data
    if sc.kind == "metrc_retail_id":
        return sc.package_label
    raise Refused(
        sc.reason if not sc.valid else f"That scan ({sc.kind}) is not a package tag.", code="not_a_tag"
    )


@handles(op.PickScan)
async def pick_scan(req: Request, msg: op.PickScan) -> Any:
    hub = req.hub
    try:
        tag = tag_of(msg.data.strip())
    except HubError as exc:
        hub.registers[req.register_id].extensions["last_pick"] = {
            "ok": False,
            "code": exc.code,
            "message": exc.message,
            "tag": "",
        }
        hub.registers[req.register_id].publish()
        raise
    weight = scale_reading(hub, req.register_id)
    today = ctx_of(hub).today()
    now = datetime.now(UTC)
    picked: dict[str, Any] = {}

    def fn(txn: lmdb.Transaction) -> Any:
        store = hub.store
        pkg = inv.package_in_txn(txn, store, tag)
        product = inv.product_in_txn(txn, store, pkg.product_id) if pkg else None
        res = ostore.reservations_in_txn(txn, store, pkg.product_id) if pkg else None

        def decide(o: Order) -> Order | Refusal:
            bound = res.bound(tag, except_order=o.id) if res is not None else 0
            r = core.pick(
                o,
                req.register_id,
                pkg,
                product,
                today,
                bound_elsewhere=bound,
                now=now,
                by=_by(req),
                weight=weight,
            )
            if isinstance(r, Refusal):
                return r
            picked["line"] = r[1]
            return r[0]

        o = change_in_txn(
            txn,
            hub,
            msg.order_id,
            decide,
            by=_by(req),
            register=req.register_id,
            event="order_pick",
            detail={"tag": tag},
            now=now,
        )
        line = o.line(picked["line"])
        assert line is not None
        return {
            "order_id": o.id,
            "line": line.line_id,
            "tag": tag,
            "picked": line.picked,
            "complete": line.complete,
            "message": f"{line.product_name}: picked {tag}.",
        }

    actor = hub.registers[req.register_id]
    try:
        result = await run_change(req, fn)
    except HubError as exc:
        actor.extensions["last_pick"] = {"ok": False, "code": exc.code, "message": exc.message, "tag": tag}
        actor.publish()
        raise
    actor.extensions["last_pick"] = {"ok": True, "code": "picked", "message": result["message"], "tag": tag}
    actor.publish()
    return result


def _catalogue(hub: Hub) -> list[Product]:
    return [p for p in sale_ctx_of(hub).index._products.values()]  # noqa: SLF001  (the in-memory catalogue)


@handles(op.ShortLine)
async def short_line(req: Request, msg: op.ShortLine) -> Any:
    hub = req.hub
    now = datetime.now(UTC)
    today = ctx_of(hub).today()
    catalogue = _catalogue(hub)

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            hub,
            msg.order_id,
            lambda o: core.mark_short(o, req.register_id, msg.line, now, _by(req)),
            by=_by(req),
            register=req.register_id,
            event="order_short",
            detail={"line": msg.line},
            now=now,
        )
        line = o.line(msg.line)
        assert line is not None
        cands, missing = candidates_in_txn(txn, hub, o, line.line_id, catalogue, today, now)
        auto = core.preferred_substitute(o.substitution, missing, cands) if missing else None
        out: dict[str, Any] = {
            "order_id": o.id,
            "line": line.line_id,
            "short_by": core.shortfall(line),
            "candidates": [candidate_view(p) for p in cands],
            "substituted": None,
        }
        if auto is not None and line.picked < line.quantity:
            o = _substitute_in_txn(txn, hub, req, o.id, line.line_id, auto, "customer preference", now, today)
            out["substituted"] = auto.id
        return out

    return await run_change(req, fn)


def candidate_view(p: Product) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "brand": p.brand,
        "price_cents": p.price_cents,
        "thc_bp": p.thc_bp,
        "sold_by": p.sold_by,
    }


def candidates_in_txn(
    txn: lmdb.Transaction,
    hub: Hub,
    o: Order,
    line_id: int,
    catalogue: list[Product],
    today: date,
    now: datetime,
) -> tuple[list[Product], Product | None]:
    line = o.line(line_id)
    missing = inv.product_in_txn(txn, hub.store, line.product_id) if line else None
    if line is None or missing is None:
        return [], None
    need = core.shortfall(line)
    same = [p for p in catalogue if p.category == missing.category and p.id != missing.id]
    free = free_map_in_txn(txn, hub, {p.id for p in same}, today)
    products = {p.id: p for p in catalogue}
    customer_id = o.customer.store_customer_id

    def fits(p: Product, qty: int) -> bool:
        items = order_limit_items(o, products, (p, qty))
        if customer_id:
            view = limits_view(hub, customer_id, items, now, txn)
            if view.get("checked"):
                return bool(view["allowed"])
        j = sale_ctx_of(hub).jurisdiction
        return evaluate(j, LimitCustomer(customer_class="adult", age=21), (), items, now).allowed

    return core.substitution_candidates(missing, need, same, free, fits), missing


def _substitute_in_txn(
    txn: lmdb.Transaction,
    hub: Hub,
    req: Request,
    order_id: str,
    line_id: int,
    product: Product,
    how: str,
    now: datetime,
    today: date,
) -> Order:
    def decide(o: Order) -> Order | Refusal:
        line = o.line(line_id)
        qty = core.shortfall(line) if line is not None else 0
        free = ostore.free_in_txn(txn, hub.store, product, today)
        return core.substitute(o, req.register_id, line_id, product, qty, free, now, _by(req), how)

    return change_in_txn(
        txn,
        hub,
        order_id,
        decide,
        by=_by(req),
        register=req.register_id,
        event="order_substitution",
        detail={"line": line_id, "product": product.id, "how": how},
        notice_kind="substitution",
        now=now,
    )


@handles(op.Substitute)
async def substitute(req: Request, msg: op.Substitute) -> Any:
    hub = req.hub
    now = datetime.now(UTC)
    today = ctx_of(hub).today()
    catalogue = _catalogue(hub)

    def fn(txn: lmdb.Transaction) -> Any:
        o = ostore.order_in_txn(txn, hub.store, msg.order_id)
        if o is None:
            raise NotFound(f"There is no order {msg.order_id!r}.")
        cands, _ = candidates_in_txn(txn, hub, o, msg.line, catalogue, today, now)
        product = next((p for p in cands if p.id == msg.product_id), None)
        if product is None:
            raise Refused(
                f"{msg.product_id} is not a substitute for line {msg.line} (category, stock or limits).",
                code="not_a_candidate",
            )
        o = _substitute_in_txn(txn, hub, req, o.id, msg.line, product, "confirmed by staff", now, today)
        return {"order_id": o.id, "line": o.lines[-1].line_id, "product_id": product.id}

    return await run_change(req, fn)


@handles(op.OrderReady)
async def order_ready(req: Request, msg: op.OrderReady) -> Any:
    hub = req.hub
    now = datetime.now(UTC)
    devices = hub.extensions.get("devices")
    printer = paired_device(hub, req.register_id, "label_printer")
    inbox = devices.inboxes.get(printer) if devices is not None else None
    done: dict[str, Order] = {}

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            hub,
            msg.order_id,
            lambda o: core.mark_ready(o, req.register_id, now, _by(req)),
            by=_by(req),
            register=req.register_id,
            now=now,
        )
        done["order"] = o
        label = bag_label(o)
        return {
            "order_id": o.id,
            "state": o.state,
            "label": {
                "printer": printer if inbox is not None else "",
                "zpl": render_bag_label(label).decode(),
            },
        }

    result = await run_change(req, fn)
    o = done.get("order")
    if o is not None:  # a retried id is answered from the stored reply; the label was printed then
        if o.claimed_at is not None:
            observe_pick(hub, (now - o.claimed_at).total_seconds())
        if inbox is not None:
            await inbox.send(PrintBagLabel(job_id=f"bag-{o.id}", label=bag_label(o)))
    return result


def bag_label(o: Order) -> BagLabel:
    return BagLabel(
        order_id=o.id,
        customer=o.customer.name,
        fulfilment=o.fulfilment,
        tags=sorted({p.tag for ln in o.lines for p in ln.picks}),
    )


# ---------------------------------------------------------------------------------------------- pickup
def pickup_refusal(order: Order, customer: Any) -> Refusal | None:
    """The person at the counter must be the order's customer: same birth date and family name."""
    if customer is None:
        return None
    family = getattr(customer, "family_name", "")
    if customer.birth_date != order.customer.birth_date or not core.family_name_matches(
        order.customer.name, family
    ):
        return Refusal(
            code="wrong_customer", message=f"This ID does not match the customer of order {order.id}."
        )
    return None


@handles(op.RecallOrder)
async def recall_order(req: Request, msg: op.RecallOrder) -> Any:
    hub = req.hub
    actor = hub.registers[req.register_id]
    sale = sale_of(actor)
    o = ostore.order(hub.store, msg.order_id)
    if o is None:
        raise NotFound(f"There is no order {msg.order_id!r}.")
    if o.state != "ready":
        raise Refused(f"Order {o.id} is {o.state}, not ready for pickup.", code="bad_state")
    if sale.cart is not None and sale.cart.lines:
        raise Refused("Park or finish the current cart first.", code="cart_busy")
    if (r := pickup_refusal(o, sale.customer)) is not None:
        raise refused(r)
    today = ctx_of(hub).today()
    now = datetime.now(UTC)
    cart = carts.new_cart(
        f"{req.register_id}-{o.id}", req.register_id, now, sale.customer.customer_id if sale.customer else ""
    )
    for ln in o.lines:
        for pick in ln.picks:
            pkg = inv.package(hub.store, pick.tag)
            product = inv.product(hub.store, ln.product_id)
            weight = None
            if ln.sold_by == "weight":
                weight = WeightReading(
                    weight_mg=pick.quantity,
                    stable=True,
                    scale_id=pick.scale_id,
                    certificate=pick.scale_certificate,
                    read_at=pick.at,
                )
            result = carts.add_package(
                cart,
                pkg,
                product,
                today,
                quantity=pick.quantity if ln.sold_by == "each" else 1,
                weight=weight,
                now=now,
            )
            if isinstance(result, Refusal):
                raise refused(result)
            cart = result.cart
    before = sale.cart
    sale.cart = cart
    sale.order_id = o.id
    _limit_guard(sale_ctx_of(hub), sale, before)
    sale.notice = {
        "level": "info",
        "text": f"Order {o.id} loaded: scan the customer's ID, then take payment.",
    }
    return await _save(req, sale, reply={"order_id": o.id, "lines": len(cart.lines)})


def complete_in_txn(
    txn: lmdb.Transaction,
    hub: Hub,
    order_id: str,
    customer: Any,
    receipt_number: int,
    *,
    by: str,
    register: str,
    now: datetime,
) -> Order:
    """Inside the sale's transaction: the order becomes completed and releases its reservations; the
    packages leave with the sale itself."""

    def decide(o: Order) -> Order | Refusal:
        return pickup_refusal(o, customer) or core.complete(o, receipt_number, now, by)

    return change_in_txn(
        txn, hub, order_id, decide, by=by, register=register, detail={"receipt": receipt_number}, now=now
    )


# ---------------------------------------------------------------------------------------------- expiry
async def expire_due(hub: Hub, at: datetime | None = None) -> list[str]:
    """Expire every open order ``expire_after_minutes`` past its promised time, as of ``at`` (the clock by
    default; a test passes a later time). What is written carries the real time."""
    ctx = ctx_of(hub)
    at = at or datetime.now(UTC)
    after = timedelta(minutes=ctx.settings.expire_after_minutes)
    due = [o.id for o in ostore.open_orders(hub.store) if core.expiry_due(o, at, after)]
    if not due:
        return []
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> list[str]:
        done = []
        for oid in due:
            o = ostore.order_in_txn(txn, hub.store, oid)
            if o is None or not core.expiry_due(o, at, after):
                continue
            change_in_txn(txn, hub, oid, lambda o: core.expire(o, now), by="hub", now=now)
            done.append(oid)
        ostore.prune_signatures(txn, hub.store, now.timestamp() - 4 * ctx.settings.max_skew_seconds)
        return done

    done: list[str] = await hub.writer.write(fn, label="orders_expire")
    ctx.changed()
    return done


async def housekeeping(
    hub: Hub, every: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    while True:
        try:
            expired = await expire_due(hub)
            if expired:
                log.info("expired %d orders: %s", len(expired), ", ".join(expired))
        except Exception:
            log.exception("order expiry pass failed")
        await trio.sleep(every)


# ---------------------------------------------------------------------------------------------- views
def order_view(
    hub: Hub, o: Order, now: datetime, *, detail: bool = False, free: dict[str, int] | None = None
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": o.id,
        "state": o.state,
        "channel": o.channel,
        "external_id": o.external_id,
        "customer": o.customer.name,
        "fulfilment": o.fulfilment,
        "promised_at": o.promised_at.isoformat(),
        "late": core.late(o, now),
        "lines": len(o.lines),
        "picker": o.picker,
        "substitution": o.substitution,
        "flags": list(flags_of(o, free if free is not None else shortages(hub, [o]))),
    }
    if detail:
        products = {ln.product_id: inv.product(hub.store, ln.product_id) for ln in o.lines}
        shelves = {}
        for pid in products:
            pk = sorted(
                (p for p in inv.packages_of(hub.store, pid) if p.status == "active" and p.quantity > 0),
                key=lambda p: (p.received_at or datetime.min.replace(tzinfo=UTC), p.tag),
            )
            shelves[pid] = pk[0].location if pk else ""
        view["pick_list"] = core.pick_list(o, {k: v for k, v in products.items() if v is not None}, shelves)
        view["notes"] = o.notes
    return view


def shortages(hub: Hub, orders: list[Order]) -> dict[str, int]:
    """Per product in open orders: free stock, negative when the orders hold more than the shelf has."""
    today = ctx_of(hub).today()
    out: dict[str, int] = {}
    with hub.store.read() as txn:
        for pid in {ln.product_id for o in orders for ln in o.lines}:
            product = inv.product_in_txn(txn, hub.store, pid)
            out[pid] = (
                0
                if product is None
                else core.free_quantity(
                    product,
                    ostore.packages_in_txn(txn, hub.store, pid),
                    ostore.reservations_in_txn(txn, hub.store, pid),
                    today,
                    clamp=False,
                )
            )
    return out


def flags_of(o: Order, free: dict[str, int]) -> tuple[str, ...]:
    """ "out_of_stock" when an open order's unpicked lines no longer have the stock they need: a received
    order whose products ran out since intake, a reserved one whose shelf fell below what orders hold."""
    if o.state == "received":
        short = any(free.get(pid, 0) < n for pid, n in core.wanted_by_product(o).items() if n)
    elif o.state in ("accepted", "picking"):
        short = any(free.get(pid, 0) < 0 for pid, n in core.wanted_by_product(o).items() if n)
    else:
        short = False
    return ("out_of_stock",) if short else ()


def queue_view(hub: Hub) -> list[dict[str, Any]]:
    ctx = ctx_of(hub)
    if ctx._view is not None and ctx._view[0] == ctx.generation:
        return ctx._view[1]
    now = datetime.now(UTC)
    orders = sorted(ostore.open_orders(hub.store), key=lambda o: (o.promised_at, o.id))
    free = shortages(hub, orders)
    view = [order_view(hub, o, now, free=free) for o in orders]
    ctx._view = (ctx.generation, view)
    return view


def snapshot(actor: Any) -> dict[str, Any]:
    """The orders part of a register's and a picker's screen."""
    hub = actor.hub
    if "orders" not in hub.extensions:
        return {}
    queue = queue_view(hub)
    out: dict[str, Any] = {
        "ready_orders": [q for q in queue if q["state"] == "ready"],
        "order_in_cart": getattr(sale_of(actor), "order_id", ""),
    }
    if actor.config.kind == "picker":
        holding = next((q for q in queue if q["state"] == "picking" and q["picker"] == actor.id), None)
        out["picker"] = {
            "queue": queue,
            "holding": None
            if holding is None
            else order_view(hub, ostore.order(hub.store, holding["id"]), datetime.now(UTC), detail=True),  # type: ignore[arg-type]
            "last_pick": actor.extensions.get("last_pick"),
        }
    return out


def held_by(hub: Hub, picker_id: str) -> str:
    return next(
        (q["id"] for q in queue_view(hub) if q["state"] == "picking" and q["picker"] == picker_id), ""
    )


def decode_intake(body: bytes) -> core.OrderIntake:
    from hub.protocol import _explain

    try:
        return msgspec.json.decode(body, type=core.OrderIntake)
    except msgspec.ValidationError as exc:
        field_, text = _explain(str(exc))
        raise BadRequest(text, field=field_) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The body is not valid JSON ({exc}).", field="body") from None


def readiness_checks(hub: Hub) -> list[Any]:
    """The morning pre-order check at opening: orders whose products ran out since intake, and late ones."""
    from hub.backoffice.readiness import Check

    queue = queue_view(hub)
    short = [q["id"] for q in queue if "out_of_stock" in q["flags"]]
    late = [q["id"] for q in queue if q["late"]]
    if short:
        return [
            Check(
                name="Online orders",
                status="warn",
                message=f"{len(short)} open order(s) lack stock since intake: {', '.join(short[:10])}.",
                action="Substitute on a picker (the customer is told) or cancel the order.",
            )
        ]
    if late:
        return [
            Check(
                name="Online orders",
                status="warn",
                message=f"{len(late)} order(s) past their promised time: {', '.join(late[:10])}.",
                action="Put a picker on the queue.",
            )
        ]
    return [Check(name="Online orders", status="ok", message=f"{len(queue)} open order(s), all in stock.")]
