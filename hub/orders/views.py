"""What the screens show of orders: the queue (by promised time, with its flags), the picker's pick list,
the registers' ready orders, and the opening-readiness check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.backoffice.readiness import Check
from hub.domain import orders as core
from hub.domain.orders import Order
from hub.orders import store as ostore
from hub.orders.service import ctx_of
from hub.sale import inventory as inv
from hub.sale.context import sale_of

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.services import HubParts


def order_view(
    hub: HubParts, o: Order, now: datetime, *, detail: bool = False, free: dict[str, int] | None = None
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


def shortages(hub: HubParts, orders: list[Order]) -> dict[str, int]:
    """Per product in open orders: free stock, negative when the orders hold more than the shelf has."""
    today = ctx_of(hub.services).today()
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


def queue_view(hub: HubParts) -> list[dict[str, Any]]:
    """The open orders by promised time, cached per order change, store write and minute: a package put on
    hold or sold at a register (no order changed) flips "out_of_stock", the clock alone flips "late"."""
    ctx = ctx_of(hub.services)
    now = datetime.now(UTC)
    key = (ctx.generation, int(hub.store.env.info()["last_txnid"]), now.replace(second=0, microsecond=0))
    if ctx.view_cache is not None and ctx.view_cache[0] == key:
        return ctx.view_cache[1]
    orders = sorted(ostore.open_orders(hub.store), key=lambda o: (o.promised_at, o.id))
    free = shortages(hub, orders)
    view = [order_view(hub, o, now, free=free) for o in orders]
    ctx.view_cache = (key, view)
    return view


def snapshot(actor: Any) -> dict[str, Any]:
    """The orders part of a register's and a picker's screen."""
    hub = actor.parts
    if hub.services.orders is None:
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
            "last_pick": actor.last_pick,
        }
    return out


def held_by(hub: HubParts, picker_id: str) -> str:
    return next(
        (q["id"] for q in queue_view(hub) if q["state"] == "picking" and q["picker"] == picker_id), ""
    )


def readiness_checks(hub: Hub) -> list[Any]:
    """The morning pre-order check at opening: orders whose products ran out since intake, and late ones."""

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
