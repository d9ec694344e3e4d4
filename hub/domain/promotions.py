"""Promotions as data: the store lists them (config or back office); the core applies them.

Rule of combination, chosen to be predictable at the counter: promotions do not stack. Each line takes at
most one promotion, the first in the store's list that applies to it (the list order is the store's
priority). Manual line and cart discounts then apply on top, and the one-cent floor applies last
(see ``pricing``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from fractions import Fraction
from typing import Protocol

import msgspec

from hub.domain.tax import round_half_up

BP = 10_000  # percentages in basis points: 1500 = 15 %


class TimeWindow(msgspec.Struct, frozen=True, kw_only=True):
    """When a promotion runs, in the store's local time. Empty weekdays means every day; minutes are
    minutes after local midnight, ``to_minute`` exclusive (960–1080 = 16:00 to 18:00)."""

    starts_on: date | None = None
    ends_on: date | None = None  # inclusive
    weekdays: tuple[int, ...] = ()  # 0 = Monday
    from_minute: int = 0
    to_minute: int = 24 * 60

    def contains(self, local_now: datetime) -> bool:
        day = local_now.date()
        if self.starts_on is not None and day < self.starts_on:
            return False
        if self.ends_on is not None and day > self.ends_on:
            return False
        if self.weekdays and local_now.weekday() not in self.weekdays:
            return False
        minute = local_now.hour * 60 + local_now.minute
        return self.from_minute <= minute < self.to_minute


class CategoryPercent(msgspec.Struct, frozen=True, kw_only=True, tag="category_percent", tag_field="kind"):
    """``percent_bp`` off every line of a category (optionally of one brand)."""

    id: str
    name: str
    category: str
    percent_bp: int
    brand: str = ""
    window: TimeWindow | None = None


class BuyNGetOne(msgspec.Struct, frozen=True, kw_only=True, tag="buy_n_get_one", tag_field="kind"):
    """Buy ``buy`` units, get the next one ``get_percent_bp`` off (10000 = "free", which the one-cent floor
    turns into one cent for cannabis). Units of eligible unit-priced lines are pooled; in each group of
    buy+1 units, sorted by price high to low, the cheapest unit gets the discount. Eligible: the listed
    products, else the category (and brand when given)."""

    id: str
    name: str
    buy: int
    get_percent_bp: int = BP
    category: str = ""
    brand: str = ""
    product_ids: tuple[str, ...] = ()
    window: TimeWindow | None = None


Promotion = CategoryPercent | BuyNGetOne


class PromotableLine(Protocol):
    """What a promotion needs of a cart line (``hub.domain.cart.CartLine`` provides it)."""

    @property
    def line_id(self) -> int: ...
    @property
    def product_id(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def brand(self) -> str: ...
    @property
    def sold_by(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def unit_price_cents(self) -> int: ...


class AppliedPromotion(msgspec.Struct, frozen=True, kw_only=True):
    promotion_id: str
    name: str
    amount_cents: int  # positive: the amount taken off the line


def _running(promotion: Promotion, local_now: datetime) -> bool:
    return promotion.window is None or promotion.window.contains(local_now)


def _bogo_eligible(promotion: BuyNGetOne, line: PromotableLine) -> bool:
    if line.sold_by != "each":
        return False
    if promotion.product_ids:
        return line.product_id in promotion.product_ids
    if promotion.category and line.category != promotion.category:
        return False
    return not (promotion.brand and line.brand != promotion.brand)


def apply_promotions(
    lines: Sequence[PromotableLine],
    bases: dict[int, int],
    promotions: Sequence[Promotion],
    local_now: datetime,
) -> dict[int, AppliedPromotion]:
    """The promotion amount per line id. ``bases`` are the line amounts before any discount."""
    applied: dict[int, AppliedPromotion] = {}
    for promotion in promotions:
        if not _running(promotion, local_now):
            continue
        free = [line for line in lines if line.line_id not in applied]
        if isinstance(promotion, CategoryPercent):
            for line in free:
                if line.category != promotion.category:
                    continue
                if promotion.brand and line.brand != promotion.brand:
                    continue
                amount = round_half_up(Fraction(bases[line.line_id] * promotion.percent_bp, BP))
                if amount > 0:
                    applied[line.line_id] = AppliedPromotion(
                        promotion_id=promotion.id, name=promotion.name, amount_cents=amount
                    )
        else:
            if promotion.buy < 1:
                continue
            units: list[tuple[int, int]] = []  # (unit price, line id), one entry per unit
            for line in free:
                if _bogo_eligible(promotion, line):
                    units.extend([(line.unit_price_cents, line.line_id)] * line.quantity)
            # High to low; ties broken by line id so the result does not depend on dict order.
            units.sort(key=lambda u: (-u[0], u[1]))
            group = promotion.buy + 1
            per_line: dict[int, int] = {}
            for i in range(group - 1, len(units), group):
                price, line_id = units[i]
                per_line[line_id] = per_line.get(line_id, 0) + round_half_up(
                    Fraction(price * promotion.get_percent_bp, BP)
                )
            for line_id, amount in per_line.items():
                if amount > 0:
                    applied[line_id] = AppliedPromotion(
                        promotion_id=promotion.id, name=promotion.name, amount_cents=amount
                    )
    return applied
