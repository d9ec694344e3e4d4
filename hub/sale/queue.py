"""The customer queue at the registers: store and publish ``hub/domain/queue.py``'s list.

An ID scanned at a register that is serving someone never touches that sale: the new customer joins the
queue, shown on every register, and the screen asks whether to keep them waiting or to serve them now
(the open cart is parked for the first customer). A budtender takes the next customer (or one by ticket)
with ``take_customer``.

This module registers the ``scan`` handler again, in front of ``hub.sale.cart.scan``: a licence at a
busy register is routed here; every other scan goes on to the service unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec
import trio

from hub import audit
from hub.access import HandlerTable
from hub.commands import Request
from hub.domain import aamva
from hub.domain import cart as carts
from hub.domain import queue as rules
from hub.domain.catalog import Refusal
from hub.domain.scan_classify import classify
from hub.errors import HubError
from hub.sale import cart as sale_cart
from hub.sale import inventory as inv
from hub.sale import protocol as p
from hub.sale.checkin import check_in_licence
from hub.sale.context import CheckedIn, Refused, actor_of, ctx_of, notice, sale_of, sale_writer
from hub.sale.view import allotment_view
from hub.store.env import decode, encode
from hub.store.layout import CUSTOMER_QUEUE

if TYPE_CHECKING:
    from actors.register import RegisterActor
    from hub.app import Hub
    from hub.services import HubParts, Services

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()

ALLOTMENT_SHOWN = 10  # waiting customers whose allotment every register shows


class QueuedCustomer(rules.Waiting, kw_only=True):
    """A waiting customer with the check-in the register takes over when serving them."""

    customer: CheckedIn


class QueueState(msgspec.Struct, kw_only=True):
    waiting: list[QueuedCustomer] = []
    last_ticket: int = 0


class CustomerQueue:
    """The store's one queue, kept in memory and in the store (``CUSTOMER_QUEUE``); changes are
    serialised (two registers scanning at once must not lose a customer)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.state = load_stored(hub) or QueueState()
        self.lock = trio.Lock()

    def put(self, txn: lmdb.Transaction, state: QueueState) -> None:
        CUSTOMER_QUEUE.put(txn, self.hub.store, encode(state))

    def publish_all(self) -> None:
        for actor in self.hub.registers.values():
            actor.publish()


def queue_of(services: Services) -> CustomerQueue:
    """The hub's queue, built by hub/wiring.py with the sale once the store is open."""
    q = services.customer_queue
    if q is None:
        raise HubError("This hub does not run the sale.", code="unsupported")
    return q


def _refused(r: Refusal) -> Refused:
    return Refused(r.message, code=r.code)


# ---------------------------------------------------------------------------------------------- commands
@HANDLERS.handles(p.Scan)
async def scan(req: Request, msg: p.Scan) -> Any:
    """A licence while another customer is buying at this register joins the queue; anything else is the
    service's scan (check-in at a free register, a package tag, a barcode)."""
    sale = sale_of(actor_of(req))
    current = sale.customer
    # an open sale: a customer who may buy and a cart with something in it (a refused customer, or one
    # who has not chosen anything yet, is simply replaced by the next ID, as before)
    selling = current is not None and current.allowed and sale.cart is not None and bool(sale.cart.lines)
    sc = classify(msg.data) if selling else None
    # as the service reads it: a serial scanner's licence is parsed as bytes even where the wedge rules
    # of the classifier would refuse it
    serial = sc is not None and sc.kind == "aamva" and msg.source == "serial"
    if current is None or sc is None or sc.kind != "aamva" or not (sc.valid or serial):
        return await sale_cart.scan(req, msg, sc)
    try:
        lic = aamva.parse_licence(sc.data.encode() if serial else sc.data)
    except aamva.AamvaError:
        return await sale_cart.scan(req, msg)  # the service says why in its own words
    ctx = ctx_of(req.services)
    checked = check_in_licence(ctx, lic, "adult")
    if checked.id_hash == current.id_hash:
        return await sale_cart.scan(req, msg)  # the same person's ID again: checked afresh, same sale
    if not checked.allowed:
        # nobody waits who may not buy; the open sale is left as it is
        notice(sale, "error", "Second ID refused: " + "; ".join(checked.reasons))
        actor_of(req).publish()
        return {"kind": "id", "allowed": False, "reasons": checked.reasons, "label": checked.label}
    return await _join(req, checked, f"scan:{msg.source}")


async def _join(req: Request, checked: CheckedIn, how: str) -> dict[str, Any]:
    q = queue_of(req.services)
    known = inv.customer_by_hash(req.store, checked.id_hash)
    now = datetime.now(UTC)
    async with q.lock:
        number = rules.ticket_number(q.state.last_ticket)
        entry = QueuedCustomer(
            ticket=str(number),
            id_hash=checked.id_hash,
            label=checked.label,
            customer_type=checked.customer_type,
            medical_on_file=bool(known is not None and known.medical_registration),
            since=now,
            by_register=req.register_id,
            customer=checked,
        )
        joined = rules.join(q.state.waiting, entry, now)
        if isinstance(joined, Refusal):
            raise _refused(joined)
        waiting, placed = joined
        new = QueueState(waiting=waiting, last_ticket=number if placed is entry else q.state.last_ticket)
        result = {
            "kind": "id",
            "allowed": True,
            "queued": True,
            "ticket": placed.ticket,
            "label": placed.label,
            "reasons": [],
        }

        def fn(txn: lmdb.Transaction) -> Any:
            q.put(txn, new)
            audit.append(
                txn,
                req.store,
                "queue_join",
                staff=req.staff_id,
                register=req.register_id,
                detail={"how": how, "ticket": placed.ticket, "customer": checked.customer_id},
            )
            return result

        out = await req.commit(fn, label="queue_join")
        q.state = new
    sale = sale_of(actor_of(req))
    notice(sale, "info", f"{placed.label} is waiting (ticket {placed.ticket}); this sale is unchanged.")
    q.publish_all()
    return out  # type: ignore[no-any-return]


@HANDLERS.handles(p.TakeCustomer)
async def take_customer(req: Request, msg: p.TakeCustomer) -> Any:
    """Serve the next customer (or ``ticket``). With ``park_current`` the open cart is parked for the
    customer at the counter first (kept for them, recalled when they return)."""
    actor = actor_of(req)
    sale = sale_of(actor)
    busy = sale.customer is not None or (sale.cart is not None and bool(sale.cart.lines))
    if busy and not msg.park_current:
        raise Refused(
            "Finish, park or end the current sale before taking the next customer.", code="register_busy"
        )
    q = queue_of(req.services)
    now = datetime.now(UTC)
    async with q.lock:
        taken = rules.take(q.state.waiting, msg.ticket, now)
        if isinstance(taken, Refusal):
            raise _refused(taken)
        waiting, entry = taken
        new = QueueState(waiting=waiting, last_ticket=q.state.last_ticket)
        parked_cart = None
        if sale.cart is not None and sale.cart.lines:
            change = carts.park(sale.cart, now)
            if isinstance(change, Refusal):
                raise _refused(change)
            parked_cart = change.cart
        customer = msgspec.structs.replace(entry.customer)
        after = msgspec.structs.replace(
            sale,
            customer=customer,
            cart=None,
            parked=[*sale.parked, parked_cart] if parked_cart is not None else list(sale.parked),
            notice={"level": "info", "text": f"Now serving {customer.label} (ticket {entry.ticket})."},
        )
        write_sale = sale_writer(after, req.store)
        waited = rules.minutes_waiting(entry, now)
        result = {"ticket": entry.ticket, "label": entry.label, "waited_minutes": waited}
        if parked_cart is not None:
            result["parked_cart"] = parked_cart.cart_id

        def fn(txn: lmdb.Transaction) -> Any:
            q.put(txn, new)
            write_sale(txn)
            audit.append(
                txn,
                req.store,
                "queue_take",
                staff=req.staff_id,
                register=req.register_id,
                detail={
                    "ticket": entry.ticket,
                    "customer": customer.customer_id,
                    "waited_minutes": waited,
                    "parked_cart": parked_cart.cart_id if parked_cart is not None else "",
                },
            )
            return result

        out = await req.commit(fn, label="queue_take")
        q.state = new
        # the register's sale is swapped only once the store has it
        sale.customer, sale.cart, sale.parked, sale.notice = (
            after.customer,
            after.cart,
            after.parked,
            after.notice,
        )
    q.publish_all()
    return out


@HANDLERS.handles(p.LeaveQueue)
async def leave_queue(req: Request, msg: p.LeaveQueue) -> Any:
    q = queue_of(req.services)
    now = datetime.now(UTC)
    async with q.lock:
        left = rules.leave(q.state.waiting, msg.ticket, now)
        if isinstance(left, Refusal):
            raise _refused(left)
        new = QueueState(waiting=left, last_ticket=q.state.last_ticket)

        def fn(txn: lmdb.Transaction) -> Any:
            q.put(txn, new)
            audit.append(
                txn,
                req.store,
                "queue_leave",
                staff=req.staff_id,
                register=req.register_id,
                detail={"ticket": msg.ticket},
            )
            return {}

        out = await req.commit(fn, label="queue_leave")
        q.state = new
    q.publish_all()
    return out


# ---------------------------------------------------------------------------------------------- snapshot
def queue_snapshot(actor: RegisterActor) -> dict[str, Any]:
    return queue_view(actor.parts)


def queue_view(hub: HubParts) -> dict[str, Any]:
    """The queue as every register shows it: ticket, who, medical or adult, minutes waiting, and what
    they may still buy today (so the budtender can say it before the first scan)."""
    ctx = ctx_of(hub.services)
    now = datetime.now(UTC)
    view = []
    for i, w in enumerate(rules.expire(queue_of(hub.services).state.waiting, now)):
        # what the next few may buy; further back it would only cost every register's snapshot time
        gauges = allotment_view(ctx, w.customer, None)["allotment"] if i < ALLOTMENT_SHOWN else []
        view.append(
            {
                "ticket": w.ticket,
                "label": w.label,
                "customer_type": w.customer_type,
                "medical": w.customer_type != "adult" or w.medical_on_file,
                "since": w.since.isoformat(),
                "waiting_minutes": rules.minutes_waiting(w, now),
                "by_register": w.by_register,
                "allotment": [
                    {"bucket": g["bucket"], "label": g["label"], "remaining_text": g["remaining_text"]}
                    for g in gauges
                ],
            }
        )
    return {"queue": view, "queue_now": now.isoformat()}


def load_stored(hub: Hub) -> QueueState | None:
    """The queue as the store has it (tests and the back office read it without the hub's memory)."""
    raw = CUSTOMER_QUEUE.read(hub.store)
    return None if raw is None else decode(raw, QueueState)
