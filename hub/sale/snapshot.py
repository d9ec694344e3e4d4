"""The sale's part of the register snapshot: what the budtender's screen shows.

A snapshot carries the register's full state (a reconnecting screen needs all of it), but a change touches
one part of it: the parts are JSON-encoded once and their bytes reused (``msgspec.Raw``) while what they
are built from is the same object. Carts and customers are replaced on every change, never changed in
place, and the priced cart and the limits decision are the ones the change computed (``price_of`` and
``current_limits`` cache them), so a scan re-encodes its cart and gauges, not the customer, the parked
carts or the last receipt's HTML.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from hub.domain.catalog import format_quantity
from hub.domain.limits.engine import format_amount  # noqa: F401  (re-exported for the UI texts)
from hub.domain.receipt import SaleRecord, render_receipt_html
from hub.sale import card
from hub.sale.context import ctx_of, paired_device, sale_of
from hub.sale.view import allotment_view, current_limits, price_of
from hub.store.keys import u64
from hub.store.layout import OPEN_DRAWERS, OPEN_DRAWERS_TOPIC

if TYPE_CHECKING:
    from actors.register import RegisterActor


_encoder = msgspec.json.Encoder()
_parts: weakref.WeakKeyDictionary[Any, dict[str, tuple[tuple[Any, ...], msgspec.Raw]]] = (
    weakref.WeakKeyDictionary()
)
# parts built and encoded, by register and name (tests: a scan encodes its cart, not the whole state)
part_builds: Counter[tuple[str, str]] = Counter()


_SCALARS = (int, str, bool, type(None))


def _same(a: Any, b: Any) -> bool:
    """Objects by identity (a changed cart or customer is a new object; comparing their contents would
    cost what the cache saves), numbers and texts by value."""
    return a is b or (type(a) in _SCALARS and a == b)


def _parts_of(actor: Any) -> dict[str, tuple[tuple[Any, ...], msgspec.Raw]]:
    """This register's encoded parts (looked up once per snapshot)."""
    cache = _parts.get(actor)
    if cache is None:
        cache = _parts[actor] = {}
    return cache


def _part(
    cache: dict[str, tuple[tuple[Any, ...], msgspec.Raw]],
    register_id: str,
    name: str,
    key: tuple[Any, ...],
    build: Callable[[], Any],
) -> msgspec.Raw:
    """The part ``name`` of this register's snapshot, encoded; rebuilt only when ``key`` changed."""
    hit = cache.get(name)
    if hit is not None and len(hit[0]) == len(key) and all(map(_same, hit[0], key)):
        return hit[1]
    part_builds[register_id, name] += 1
    raw = msgspec.Raw(_encoder.encode(build()))
    cache[name] = (key, raw)
    return raw


def sale_snapshot(actor: RegisterActor) -> dict[str, Any]:
    hub = actor.parts
    ctx = ctx_of(hub.services)
    sale = sale_of(actor)
    c = sale.customer
    state: dict[str, Any] = {"demo": hub.config.server.demo, "notice": sale.notice}
    parts, rid = _parts_of(actor), actor.id
    state["customer"] = _part(
        parts, rid, "customer", (c, c and c.loyalty_points, c and c.allowed), lambda: _customer_view(c)
    )
    allowed = c if c and c.allowed else None
    decision = current_limits(ctx, allowed, sale.cart) if allowed and allowed.customer_class else None
    gauges: list[dict[str, Any]] = []  # allotment_view's answer, built at most once per snapshot

    def gauge(name: str) -> Any:
        if not gauges:
            gauges.append(allotment_view(ctx, allowed, sale.cart))
        return gauges[0][name]

    for name in ("allotment", "limit_problems"):
        state[name] = _part(parts, rid, name, (allowed, decision), lambda name=name: gauge(name))  # type: ignore[misc]
    cart = sale.cart
    priced = price_of(ctx, cart, sale) if cart is not None else None
    state["cart"] = _part(parts, rid, "cart", (cart, priced), lambda: _cart_view(cart, priced))
    state["parked"] = _part(
        parts,
        rid,
        "parked",
        (len(sale.parked), *sale.parked, *(price_of(ctx, pc, sale) for pc in sale.parked)),
        lambda: _parked_view(ctx, sale),
    )
    _rest(actor, parts, state, sale, cart)
    return state


def _customer_view(c: Any) -> dict[str, Any] | None:
    return (
        None
        if c is None
        else {
            "type": c.customer_type,
            "age": c.age,
            "label": c.label,
            "decision": {"allowed": c.allowed, "reasons": c.reasons, "warnings": c.warnings},
            "medical": None
            if c.customer_type == "adult"
            else {
                "registration": c.registration_number,
                "expires": c.registration_expiry.isoformat() if c.registration_expiry else None,
            },
            "loyalty_points": c.loyalty_points,
            "manual": bool(c.manual_reason),
        }
    )


def _cart_view(cart: Any, priced: Any) -> dict[str, Any] | None:
    if cart is None:
        return None
    lines = []
    for ln in cart.lines:
        pl = priced.line(ln.line_id)
        qty = ln.weight_mg if ln.sold_by == "weight" else ln.quantity
        lines.append(
            {
                "line": ln.line_id,
                "tag": ln.package_tag,
                "product": ln.product_name,
                "brand": ln.brand,
                "category": ln.category,
                "sold_by": ln.sold_by,
                "quantity": ln.quantity,
                "weight_mg": ln.weight_mg,
                "qty_text": _qty_text(ln.sold_by, qty),
                "unit_price_cents": ln.unit_price_cents,
                "discount_cents": pl.discount_cents,
                "tax_cents": sum(t.amount_cents for t in pl.taxes),
                "total_cents": pl.total_cents,
                # the line in the unit price's own basis (before tax where prices exclude it):
                # quantity × unit price, less the line's discounts; tax is shown in the totals
                "base_cents": pl.base_cents,
                "price_cents": pl.price_cents,
                "promotion": pl.promotion.name if pl.promotion is not None else "",
                "weight_source": ln.weight_source,
                "scale": ln.scale_id,
            }
        )
    return {
        "id": cart.cart_id,
        "lines": lines,
        "subtotal_cents": priced.subtotal_cents,
        "discount_cents": priced.total_discount_cents,
        "tax_cents": priced.tax_cents,
        "taxes": [{"name": t.name, "cents": t.amount_cents} for t in priced.taxes],
        "total_cents": priced.total_cents,
        "prices_include_tax": priced.prices_include_tax,
        "rounding_note": priced.rounding_note,
    }


def _parked_view(ctx: Any, sale: Any) -> list[dict[str, Any]]:
    return [
        {
            "cart_id": pc.cart_id,
            "parked_at": pc.parked_at.isoformat() if pc.parked_at else None,
            "lines": len(pc.lines),
            "total_cents": price_of(ctx, pc, sale).total_cents,
        }
        for pc in sale.parked
    ]


def _rest(
    actor: Any,
    parts: dict[str, tuple[tuple[Any, ...], msgspec.Raw]],
    state: dict[str, Any],
    sale: Any,
    cart: Any,
) -> None:
    """Scale, payment, terminal, drawer, devices and the last receipt: small, or cached by themselves."""
    hub = actor.parts
    ctx = ctx_of(hub.services)
    s = ctx.scales.get(paired_device(hub.config, hub.services.devices, actor.id, "scale"))
    state["scale"] = (
        None
        if s is None
        else {
            "device": s.device,
            "weight_mg": s.weight_mg,
            "stable": s.stable,
            "state": s.state,
            "up": s.up,
            "certificate": s.certificate,
        }
    )
    term = ctx.terminals.get(paired_device(hub.config, hub.services.devices, actor.id, "payment_terminal"))
    up = bool(term is not None and getattr(term, "up", True))
    # the payment in progress (card or pay by bank), or None: see hub/sale/card.py
    state["payment"] = card.payment_view(actor, cart_open=cart is not None)
    atm = getattr(term, "cashless_atm", None)
    state["terminal"] = {
        "id": getattr(term, "device_id", None) if term is not None else None,
        "cashless_atm": None
        if atm is None
        else {"increment_cents": atm.increment_cents, "fee_cents": atm.fee_cents},
        "pay_by_bank": hub.services.pay_by_bank is not None,
        "up": up,
        "cash_only": not up,
        "message": ""
        if up
        else "Card terminal offline: cash only."
        if term is not None
        else "No card terminal: cash only.",
    }
    # the open drawer changes only by a committed write for this register, which moves this generation
    drawer_generation = hub.store.commits.generation(OPEN_DRAWERS_TOPIC, actor.id)
    state["drawer"] = _part(
        parts, actor.id, "drawer", (hub.store, drawer_generation), lambda: _drawer_view(hub, actor.id)
    )
    state["devices"] = [
        d.view() for d in hub.services.device_health.values() if d.register in (None, actor.id)
    ]
    number = sale.last_receipt_number
    state["last_receipt"] = _part(
        parts, actor.id, "last_receipt", (number,), lambda: last_receipt_view(hub, number) if number else None
    )


def _drawer_view(hub: Any, register_id: str) -> dict[str, Any]:
    drawer = OPEN_DRAWERS.read(hub.store, register_id)
    return {"open": drawer is not None, "session_id": drawer}


def last_receipt_view(hub: Any, number: int) -> dict[str, Any] | None:
    """The receipt the screen shows after a sale; a committed sale never changes (a void is its own
    record), so it is rendered once and kept for the register's later snapshots."""
    ctx = ctx_of(hub.services)
    cached = ctx.receipt_views.get(number)
    if cached is not None:
        return cached

    rec = hub.store.get("sales", u64(number), SaleRecord)
    if rec is None:
        return None
    view = {
        "number": number,
        "total_cents": rec.receipt.total_cents,
        "change_cents": rec.receipt.change_cents,
        "html": render_receipt_html(rec.receipt),
    }
    if len(ctx.receipt_views) > 64:
        ctx.receipt_views.clear()
    ctx.receipt_views[number] = view
    return view


def _qty_text(sold_by: str, qty: int) -> str:
    if sold_by == "weight":
        whole, frac = divmod(qty, 1000)
        return f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + " g"
    return f"{qty} ×"


__all__ = ["sale_snapshot", "format_quantity"]
