"""Order handling: every change is one writer transaction that loads the order, asks the core
(``hub.domain.orders``) and stores the answer with its audit entry, callback and notices
(``hub.orders.store.save_order``). The commands (``picking``, ``pickup``) and the REST boundary (``api``)
are thin wrappers around it; ``views`` draws the queue.
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

from hub.commands import Request
from hub.config import ChannelSection, NoticesSection, OrdersSection
from hub.domain import cart as carts
from hub.domain import orders as core
from hub.domain.catalog import Customer, Product, Refusal
from hub.domain.limits.engine import LimitCustomer, LimitItem, evaluate, history_usage, history_window_start
from hub.domain.orders import Order
from hub.errors import BadRequest, NotFound
from hub.live.frames import MAX_JSON_DEPTH, explain, json_depth_exceeds
from hub.orders import store as ostore
from hub.sale import inventory as inv
from hub.sale.context import Refused
from hub.sale.context import ctx_of as sale_ctx_of
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
    # the queue as last built, with its key: (order changes, the store's last transaction, the minute)
    view_cache: tuple[tuple[int, int, datetime], list[dict[str, Any]]] | None = None  # queue_view's

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
    ctx = hub.services.orders
    if ctx is None:
        raise LookupError("This hub runs no online orders.")
    return ctx


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


# ---------------------------------------------------------------------------------------------- expiry
async def expire_due(hub: Hub, at: datetime | None = None) -> list[str]:
    """Expire every open order ``expire_after_minutes`` past its promised time, as of ``at`` (the clock by
    default; a test passes a later time). What is written carries the real time."""
    ctx = ctx_of(hub)
    at = at or datetime.now(UTC)
    after = timedelta(minutes=ctx.settings.expire_after_minutes)
    due = [o.id for o in ostore.open_orders(hub.store) if core.expiry_due(o, at, after)]
    now = datetime.now(UTC)
    # signatures older than any acceptable timestamp can no longer be replayed: forget them on every pass
    forget_before = now.timestamp() - 4 * ctx.settings.max_skew_seconds
    if not due:
        if ostore.has_signatures_before(hub.store, forget_before):
            await hub.writer.write(
                lambda txn: ostore.prune_signatures(txn, hub.store, forget_before), label="orders_replays"
            )
        return []

    def fn(txn: lmdb.Transaction) -> list[str]:
        done = []
        for oid in due:
            o = ostore.order_in_txn(txn, hub.store, oid)
            if o is None or not core.expiry_due(o, at, after):
                continue
            change_in_txn(txn, hub, oid, lambda o: core.expire(o, now), by="hub", now=now)
            done.append(oid)
        ostore.prune_signatures(txn, hub.store, forget_before)
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


def decode_intake(body: bytes) -> core.OrderIntake:

    if json_depth_exceeds(body, MAX_JSON_DEPTH):  # before decoding: a decoder's recursion is no limit
        raise BadRequest(f"The body nests deeper than {MAX_JSON_DEPTH} levels.", field="body")
    try:
        return msgspec.json.decode(body, type=core.OrderIntake)
    except msgspec.ValidationError as exc:
        field_, text = explain(str(exc))
        raise BadRequest(text, field=field_) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The body is not valid JSON ({exc}).", field="body") from None
