"""Pricing a cart: base amounts, promotions, line and cart discounts, loyalty, the one-cent floor, taxes.

Order of operations (each step works on what the previous one left):
  1. base: unit price × units, or price per gram × weight (rounded half up to the cent);
  2. promotion (``promotions``: at most one per line);
  3. manual line discounts;
  4. cart discounts, spread over the lines in proportion to what each line can still give;
  5. loyalty redemption, spread the same way;
  6. taxes per line on the result (``tax``).
The floor: a cannabis line never goes below one cent per unit (one cent for a weighed line). Giving
cannabis away is prohibited in several states (e.g. Cal. Bus. & Prof. Code §26153: no free cannabis as a
promotion); vendors implement the same floor (Flowhub "1-cent minimum", compliance-and-market.md §5).
Discounts are clipped, never the floor, and the clipped amount is what is recorded and printed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

import msgspec

from hub.domain.cart import Cart, CartLine, line_base_cents
from hub.domain.discounts import discount_amount
from hub.domain.promotions import BP, AppliedPromotion, Promotion, apply_promotions
from hub.domain.tax import TaxAmount, TaxTable, sum_taxes, tax_line


class LoyaltyPolicy(msgspec.Struct, frozen=True, kw_only=True):
    points_per_dollar: int = 1  # earned on what the customer paid before tax, whole dollars
    cents_per_point: int = 1  # 100 points = $1.00 off
    min_redeem_points: int = 100
    # categories that neither earn nor take redemption (hub/domain/loyalty.py: giveaway laws)
    excluded_categories: tuple[str, ...] = ()
    earn_multiplier_bp: int = BP  # the customer's tier and birthday (hub/domain/loyalty.py)


def line_floor_cents(line: CartLine) -> int:
    if not line.is_cannabis:
        return 0
    return 1 if line.sold_by == "weight" else line.quantity


def allocate(total: int, capacities: Sequence[int]) -> list[int]:
    """Split ``total`` cents over lines in proportion to their capacities, never giving a line more than
    its capacity (largest remainder; ties to the earlier line). ``total`` must not exceed Σ capacities."""
    cap_sum = sum(capacities)
    if total <= 0 or cap_sum <= 0:
        return [0] * len(capacities)
    assert total <= cap_sum
    # whole shares and remainders over the common denominator cap_sum (the exact quotients, in integers)
    exact = [divmod(total * c, cap_sum) for c in capacities]
    shares = [q for q, _ in exact]
    left = total - sum(shares)
    order = sorted(range(len(capacities)), key=lambda i: (-exact[i][1], i))
    for i in order[:left]:
        shares[i] += 1
    return shares


class PricedLine(msgspec.Struct, frozen=True, kw_only=True):
    line_id: int
    base_cents: int
    promotion: AppliedPromotion | None
    promotion_cents: int
    line_discount_cents: int
    cart_discount_cents: int
    loyalty_cents: int
    price_cents: int  # after every discount; pre-tax when prices exclude tax, tax-inclusive otherwise
    pretax_cents: int
    taxes: tuple[TaxAmount, ...]
    total_cents: int  # what the customer pays for this line
    floor_applied: bool = False  # a discount was clipped to keep the line at its one-cent floor

    @property
    def discount_cents(self) -> int:
        return self.promotion_cents + self.line_discount_cents + self.cart_discount_cents + self.loyalty_cents


class PricedCart(msgspec.Struct, frozen=True, kw_only=True):
    lines: tuple[PricedLine, ...]
    subtotal_cents: int  # Σ base
    promotion_cents: int
    discount_cents: int  # manual line + cart discounts
    loyalty_cents: int
    net_cents: int  # Σ price (after all discounts)
    pretax_cents: int
    taxes: tuple[TaxAmount, ...]
    tax_cents: int
    total_cents: int  # amount due
    prices_include_tax: bool
    rounding_note: str
    loyalty_points_redeemed: int = 0
    loyalty_points_earned: int = 0

    @property
    def total_discount_cents(self) -> int:
        return self.promotion_cents + self.discount_cents + self.loyalty_cents

    def line(self, line_id: int) -> PricedLine:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise KeyError(line_id)


# tax_line is pure over values (an int, a str, a frozen table) and exact arithmetic makes it costly (~25 us a
# line); a cart re-priced after a scan has the same lines at the same amounts, so each is computed once
_tax_line = functools.lru_cache(maxsize=4096)(tax_line)


def price_cart(
    cart: Cart,
    tax_table: TaxTable,
    *,
    local_now: datetime,
    promotions: Sequence[Promotion] = (),
    loyalty: LoyaltyPolicy | None = None,
    available_points: int = 0,
) -> PricedCart:
    """Price every line of ``cart``. ``local_now`` is the store's local time (promotion windows)."""
    lines = list(cart.lines)
    bases = {line.line_id: line_base_cents(line) for line in lines}
    floors = [line_floor_cents(line) for line in lines]
    promos = apply_promotions(lines, bases, promotions, local_now)

    amounts: list[int] = []
    promo_cents: list[int] = []
    line_disc: list[int] = []
    clipped = [False] * len(lines)
    for i, line in enumerate(lines):
        amount = bases[line.line_id]
        room = max(amount - floors[i], 0)
        p = promos.get(line.line_id)
        want = p.amount_cents if p else 0
        got = min(want, room)
        clipped[i] |= got < want
        amount -= got
        room -= got
        promo_cents.append(got)
        want = sum(discount_amount(d, amount) for d in line.discounts)
        got = min(max(want, 0), room)
        clipped[i] |= got < want
        amount -= got
        line_disc.append(got)
        amounts.append(amount)

    def spread(want: int, only: list[bool] | None = None) -> list[int]:
        rooms = [max(a - f, 0) for a, f in zip(amounts, floors, strict=True)]
        if only is not None:
            rooms = [r if ok else 0 for r, ok in zip(rooms, only, strict=True)]
        got = min(max(want, 0), sum(rooms))
        if got < want:
            for i, r in enumerate(rooms):
                clipped[i] |= r > 0
        shares = allocate(got, rooms)
        for i, s in enumerate(shares):
            amounts[i] -= s
        return shares

    cart_sum = sum(amounts)
    cart_disc = spread(sum(discount_amount(d, cart_sum) for d in cart.cart_discounts))

    points_redeemed = 0
    loyalty_cents = [0] * len(lines)
    earning = [loyalty is None or line.category not in loyalty.excluded_categories for line in lines]
    if loyalty is not None and cart.loyalty_points_to_redeem > 0:
        points = min(cart.loyalty_points_to_redeem, available_points)
        if points >= loyalty.min_redeem_points:
            rooms_total = sum(max(a - f, 0) for a, f, ok in zip(amounts, floors, earning, strict=True) if ok)
            points = min(points, rooms_total // loyalty.cents_per_point)  # never burn points for nothing
            points_redeemed = points
            loyalty_cents = spread(points * loyalty.cents_per_point, earning)

    priced: list[PricedLine] = []
    for i, line in enumerate(lines):
        lt = _tax_line(amounts[i], line.tax_class, tax_table)
        priced.append(
            PricedLine(
                line_id=line.line_id,
                base_cents=bases[line.line_id],
                promotion=promos.get(line.line_id) if promo_cents[i] else None,
                promotion_cents=promo_cents[i],
                line_discount_cents=line_disc[i],
                cart_discount_cents=cart_disc[i],
                loyalty_cents=loyalty_cents[i],
                price_cents=amounts[i],
                pretax_cents=lt.pretax_cents,
                taxes=lt.taxes,
                total_cents=lt.total_cents,
                floor_applied=clipped[i],
            )
        )
    taxes = sum_taxes([p.taxes for p in priced], tax_table)
    pretax = sum(p.pretax_cents for p in priced)
    earned = 0
    if loyalty is not None and cart.customer_id:
        eligible = sum(p.pretax_cents for p, ok in zip(priced, earning, strict=True) if ok)
        earned = (eligible // 100) * loyalty.points_per_dollar * loyalty.earn_multiplier_bp // BP
    return PricedCart(
        lines=tuple(priced),
        subtotal_cents=sum(bases.values()),
        promotion_cents=sum(promo_cents),
        discount_cents=sum(line_disc) + sum(cart_disc),
        loyalty_cents=sum(loyalty_cents),
        net_cents=sum(amounts),
        pretax_cents=pretax,
        taxes=taxes,
        tax_cents=sum(t.amount_cents for t in taxes),
        total_cents=sum(p.total_cents for p in priced),
        prices_include_tax=tax_table.prices_include_tax,
        rounding_note=tax_table.rounding_note,
        loyalty_points_redeemed=points_redeemed,
        loyalty_points_earned=earned,
    )
