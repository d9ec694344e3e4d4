"""Pickup and curbside: a register (or the handheld, for curbside) recalls a ready order into its cart; the
customer's ID must match the order's customer; the sale itself completes the order in its transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lmdb

from hub.access import HandlerTable
from hub.commands import Request
from hub.domain import cart as carts
from hub.domain import orders as core
from hub.domain.cart import WeightReading
from hub.domain.catalog import Refusal
from hub.domain.orders import Order
from hub.errors import NotFound
from hub.orders import protocol as op
from hub.orders import store as ostore
from hub.orders.service import change_in_txn, ctx_of, refused
from hub.sale import inventory as inv
from hub.sale.cart import limit_guard
from hub.sale.context import Refused, sale_of, save
from hub.sale.context import ctx_of as sale_ctx_of

if TYPE_CHECKING:
    from hub.app import Hub

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


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


@HANDLERS.handles(op.RecallOrder)
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
    limit_guard(sale_ctx_of(hub), sale, before)
    sale.notice = {
        "level": "info",
        "text": f"Order {o.id} loaded: scan the customer's ID, then take payment.",
    }
    return await save(req, sale, reply={"order_id": o.id, "lines": len(cart.lines)})


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
