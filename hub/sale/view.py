"""What the register shows of a sale: limits over the cart, allotment gauges, the priced cart, receipts.

The limits decision is cached per cart change, so the guard that refuses an item and the gauges share it.
"""

from __future__ import annotations

from collections import Counter
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
from hub.sale.context import CheckedIn, DecidedLimits, RegisterSale, SaleContext
from hub.store.keys import u64
from hub.store.layout import LEDGER_TOPIC

if TYPE_CHECKING:
    from hub.app import Hub


def _ledger_generation(ctx: SaleContext, customer_id: str) -> int:
    """The freshness of one customer's purchase history: it moves on when a committed batch wrote that
    customer's ledger (a sale, a void, a return, a merge or purge, at any register), not anybody else's."""
    return ctx.store.commits.generation(LEDGER_TOPIC, customer_id)


def check_limits(
    ctx: SaleContext,
    txn: lmdb.Transaction | None,
    customer: CheckedIn,
    cart: Cart | None,
    now: datetime,
    *,
    fresh: bool = False,
) -> LimitDecision:
    """The limits for this customer and cart. What their past purchases use is read from the ledger once
    per customer, write to their ledger and minute (a figure kept within the minute only ever counts more:
    a purchase leaving a window is still counted); ``fresh`` reads it again inside the caller's
    transaction, as the sale commit does, and keeps nothing (that transaction has not committed yet).
    Without ``txn`` a read transaction is opened only when the ledger must be read (a scan has the figure)."""
    j = ctx.jurisdiction
    cls = customer.customer_class or "adult"
    who = LimitCustomer(customer_class=cls, age=customer.age)
    if fresh:
        assert txn is not None, "a fresh check reads in the caller's transaction"
        usage = _history_usage(ctx, txn, customer.customer_id, who, now)
    else:
        # the generation is taken before the read: a commit landing in between makes the entry older
        # than what it holds (a needless re-read later), never newer
        key = (cls, customer.age, _ledger_generation(ctx, customer.customer_id), _minute(now))
        hit = ctx.usage_cache.get(customer.customer_id)
        if hit is not None and hit[0] == key:
            usage = hit[1]
        else:
            if txn is None:
                with ctx.store.read() as own:
                    usage = _history_usage(ctx, own, customer.customer_id, who, now)
            else:
                usage = _history_usage(ctx, txn, customer.customer_id, who, now)
            history_reads[customer.customer_id] += 1
            if len(ctx.usage_cache) > 1024:
                ctx.usage_cache.clear()
            ctx.usage_cache[customer.customer_id] = (key, usage)
    return evaluate(j, who, (), limit_items(cart), now, state_remaining=customer.state_remaining, usage=usage)


def _history_usage(
    ctx: SaleContext, txn: lmdb.Transaction, customer_id: str, who: LimitCustomer, now: datetime
) -> dict[str, int]:
    j = ctx.jurisdiction
    since = history_window_start(j, who.customer_class, now)
    return history_usage(j, who, inv.history(txn, ctx.store, customer_id, since), now)


def _minute(now: datetime) -> int:
    return int(now.timestamp()) // 60


# history reads for the limits cache, by customer (tests: another customer's sale re-reads nobody else)
history_reads: Counter[str] = Counter()


def current_limits(ctx: SaleContext, customer: CheckedIn, cart: Cart | None) -> LimitDecision:
    """The limits decision for this customer and cart, computed once per change: the guard that refuses an
    item and the gauges on the screen share it. Carts are frozen and a register's customer is replaced,
    never changed in place, so the same objects (held by the entry: their ids cannot be reused) with the
    same limits fields decide the same, until this customer's ledger is written (a sale, void or return,
    at any register) or the minute passes."""
    now = datetime.now(UTC)
    minute = _minute(now)
    generation = _ledger_generation(ctx, customer.customer_id)
    checks = (customer.customer_class, customer.age, customer.state_remaining)
    hit = ctx.limits_cache.get(customer.customer_id)
    if (
        hit is not None
        and hit.cart is cart
        and hit.customer is customer
        and hit.generation == generation
        and hit.minute == minute
        and hit.checks == checks
    ):
        return hit.decision
    decision = check_limits(ctx, None, customer, cart, now)
    if len(ctx.limits_cache) > 256:
        ctx.limits_cache.clear()
    ctx.limits_cache[customer.customer_id] = DecidedLimits(
        customer, cart, checks, generation, minute, decision
    )
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
    """The priced cart; the same cart (frozen: a change is a new object) with the same points in the same
    minute prices the same (promotion windows are minute-grained; a catalogue or promotion change clears
    the cache), so a snapshot reuses the price computed for the change and a payment the snapshot's."""
    now = datetime.now(UTC)
    minute = _minute(now)  # a zone's offset is whole minutes: the local minute turns with the UTC one
    points = sale.customer.loyalty_points if sale.customer else 0
    hit = ctx.price_cache.get(cart.cart_id)
    if hit is not None and hit[1] is cart and hit[0] == (points, minute):
        return hit[2]
    local_now = now.astimezone(ctx.zone)
    priced = _price_now(ctx, cart, local_now, points, sale.customer)
    if len(ctx.price_cache) > 256:
        ctx.price_cache.clear()
    ctx.price_cache[cart.cart_id] = ((points, minute), cart, priced)
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
