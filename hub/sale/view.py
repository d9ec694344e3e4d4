"""What the register shows of a sale: limits over the cart, allotment gauges, the priced cart, receipts.

The limits decision is cached per cart change, so the guard that refuses an item and the gauges share it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lmdb

from hub.domain.cart import Cart
from hub.domain.limits.engine import (
    LimitCustomer,
    LimitDecision,
    evaluate,
    format_amount,
    history_usage,
    history_window_start,
)
from hub.domain.pricing import PricedCart, price_cart
from hub.domain.promotions import eligible
from hub.domain.receipt import SaleRecord, render_receipt_html
from hub.domain.sale_plan import limit_items
from hub.sale import inventory as inv
from hub.sale.context import CheckedIn, RegisterSale, SaleContext
from hub.store.keys import u64
from hub.store.layout import LEDGER_TOPIC

if TYPE_CHECKING:
    from hub.app import Hub


def check_limits(
    ctx: SaleContext,
    txn: lmdb.Transaction,
    customer: CheckedIn,
    cart: Cart | None,
    now: datetime,
    *,
    fresh: bool = False,
) -> LimitDecision:
    """The limits for this customer and cart. What their past purchases use is read from the ledger once
    per customer, store-wide sale and minute (a stale figure only ever counts more); ``fresh`` reads it
    again inside the caller's transaction, as the sale commit does."""
    j = ctx.jurisdiction
    cls = customer.customer_class or "adult"
    who = LimitCustomer(customer_class=cls, age=customer.age)
    key = (
        customer.customer_id,
        cls,
        customer.age,
        ctx.hub.store.commits.generation(LEDGER_TOPIC),
        now.replace(second=0, microsecond=0),
    )
    hit = None if fresh else ctx.usage_cache.get(customer.customer_id)
    if hit is not None and hit[0] == key:
        usage = hit[1]
    else:
        since = history_window_start(j, cls, now)
        usage = history_usage(j, who, inv.history(txn, ctx.hub.store, customer.customer_id, since), now)
        if len(ctx.usage_cache) > 1024:
            ctx.usage_cache.clear()
        ctx.usage_cache[customer.customer_id] = (key, usage)
    return evaluate(j, who, (), limit_items(cart), now, state_remaining=customer.state_remaining, usage=usage)


def current_limits(ctx: SaleContext, customer: CheckedIn, cart: Cart | None) -> LimitDecision:
    """The limits decision for this customer and cart, computed once per change: the guard that refuses an
    item and the gauges on the screen share it. Any sale or void in the store (another register may sell
    to the same customer) and the passing minute make it stale."""
    now = datetime.now(UTC)
    key = (
        customer.customer_id,
        customer.customer_class,
        customer.checked_in_at,
        customer.state_remaining and tuple(sorted(customer.state_remaining.items())),
        cart.cart_id if cart else "",
        cart.version if cart else -1,
        ctx.hub.store.commits.generation(LEDGER_TOPIC),
        now.replace(second=0, microsecond=0),
    )
    hit = ctx.limits_cache.get(customer.customer_id)
    if hit is not None and hit[0] == key:
        return hit[1]
    with ctx.hub.store.read() as txn:
        decision = check_limits(ctx, txn, customer, cart, now)
    if len(ctx.limits_cache) > 256:
        ctx.limits_cache.clear()
    ctx.limits_cache[customer.customer_id] = (key, decision)
    return decision


def allotment_view(ctx: SaleContext, customer: CheckedIn | None, cart: Cart | None) -> dict[str, Any]:
    """Gauges: per bucket the limit, what history and the cart use, and what is left."""
    if customer is None or not customer.allowed or customer.customer_class is None:
        return {"allotment": [], "limit_problems": []}
    j = ctx.jurisdiction
    with_cart = current_limits(ctx, customer, cart)
    rules = [r for r in j.rules if customer.customer_class in r.classes]
    gauges = []
    for bucket_id, left in sorted(with_cart.remaining.items()):
        b = j.buckets[bucket_id]
        caps = [r.limit for r in rules if r.bucket == bucket_id]
        if not caps:
            continue
        limit = min(caps)
        used = max(limit - left, 0)
        unit = {"mg": "g", "ul": "ml"}.get(b.unit, b.unit)
        gauges.append(
            {
                "bucket": bucket_id,
                "label": b.label,
                "limit": limit,
                "used": used,
                "remaining": left,
                "unit": unit,
                "limit_text": format_amount(limit * b.scale, b, round_up=False),
                "remaining_text": format_amount(left * b.scale, b, round_up=False),
            }
        )
    return {"allotment": gauges, "limit_problems": [v.message for v in with_cart.violations]}


def price_of(ctx: SaleContext, cart: Cart, sale: RegisterSale) -> PricedCart:
    """The priced cart; the same cart version in the same minute prices the same (promotion windows are
    minute-grained), so a snapshot reuses the price computed for the change."""
    local_now = datetime.now(UTC).astimezone(ctx.zone)
    points = sale.customer.loyalty_points if sale.customer else 0
    key = (cart.version, cart.status, points, local_now.replace(second=0, microsecond=0))
    hit = ctx.price_cache.get(cart.cart_id)
    if hit is not None and hit[0] == key and hit[1] is cart:
        return hit[2]
    priced = _price_now(ctx, cart, local_now, points, sale.customer)
    if len(ctx.price_cache) > 256:
        ctx.price_cache.clear()
    ctx.price_cache[cart.cart_id] = (key, cart, priced)
    return priced


def _price_now(
    ctx: SaleContext, cart: Cart, local_now: datetime, points: int, customer: CheckedIn | None = None
) -> PricedCart:
    # a promotion that asks for a code applies only when the customer gave it
    promotions, loyalty = eligible(ctx.settings.promotions, codes=cart.promo_codes), ctx.settings.loyalty
    if ctx.pricing_for is not None:
        promotions, loyalty = ctx.pricing_for(cart, customer, local_now)
    return price_cart(
        cart,
        ctx.settings.tax_table,
        local_now=local_now,
        promotions=promotions,
        loyalty=loyalty,
        available_points=points,
    )


def receipt_html(hub: Hub, number: int) -> str | None:
    rec = hub.store.get("sales", u64(number), SaleRecord)
    return None if rec is None else render_receipt_html(rec.receipt)
