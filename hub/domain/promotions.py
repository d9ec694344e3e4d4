"""Promotions as data: the store lists them (config or back office); the core applies them.

Kinds: a percentage off a category (``category_percent``), an amount off each unit (``amount_off``), a
bundle price for N units (``bundle``) and buy-N-get-one (``buy_n_get_one``). Any of them may run in a time
window, only for some customer groups (``customer_groups``: "medical", a loyalty tier, "veteran"…), or only
when the customer gives a promo code (``code``): ``eligible`` filters the list before it is applied.

Rule of combination, chosen to be predictable at the counter: promotions do not stack. Each line takes at
most one promotion, the first in the store's list that applies to it (the list order is the store's
priority). Manual line and cart discounts then apply on top, and the one-cent floor applies last
(see ``pricing``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol

import msgspec

from hub.domain.tax import div_half_up

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
    code: str = ""  # a promo code the customer must give ("" = everyone)
    customer_groups: tuple[str, ...] = ()  # only for these groups ("" = everyone)
    categories: tuple[str, ...] = ()  # more categories besides ``category``


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
    code: str = ""
    customer_groups: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


class AmountOff(msgspec.Struct, frozen=True, kw_only=True, tag="amount_off", tag_field="kind"):
    """``amount_cents`` off each eligible unit (a weighed line counts once). Eligible: the listed products,
    else the categories (and brand when given)."""

    id: str
    name: str
    amount_cents: int
    categories: tuple[str, ...] = ()
    brand: str = ""
    product_ids: tuple[str, ...] = ()
    window: TimeWindow | None = None
    code: str = ""
    customer_groups: tuple[str, ...] = ()


class Bundle(msgspec.Struct, frozen=True, kw_only=True, tag="bundle", tag_field="kind"):
    """``quantity`` eligible units for ``price_cents`` together ("3 pre-rolls for $20"). Units are pooled
    like buy-N-get-one, dearest first; each full group's saving is split over its units' lines."""

    id: str
    name: str
    quantity: int
    price_cents: int
    categories: tuple[str, ...] = ()
    brand: str = ""
    product_ids: tuple[str, ...] = ()
    window: TimeWindow | None = None
    code: str = ""
    customer_groups: tuple[str, ...] = ()


Promotion = CategoryPercent | BuyNGetOne | AmountOff | Bundle
KINDS = ("category_percent", "amount_off", "bundle", "buy_n_get_one")


def eligible(
    promotions: Sequence[Promotion], *, codes: Sequence[str] = (), groups: Sequence[str] = ()
) -> list[Promotion]:
    """The promotions this customer may have: no code or a code they gave (case-insensitive), no group
    restriction or one of their groups."""
    given = {c.strip().upper() for c in codes}
    mine = set(groups)
    out: list[Promotion] = []
    for p in promotions:
        if p.code and p.code.strip().upper() not in given:
            continue
        if p.customer_groups and not (set(p.customer_groups) & mine):
            continue
        out.append(p)
    return out


def problems(promotion: Promotion) -> list[str]:
    """What is wrong with a promotion as written (empty when it can run); checked before it is stored."""
    out: list[str] = []
    if not promotion.id.strip() or not promotion.name.strip():
        out.append("a promotion needs an id and a name")
    if isinstance(promotion, CategoryPercent):
        if not 0 < promotion.percent_bp <= BP:
            out.append("percent_bp is between 1 and 10000 (100 %)")
        if not promotion.category and not promotion.categories:
            out.append("name the category it applies to")
    elif isinstance(promotion, AmountOff):
        if promotion.amount_cents <= 0:
            out.append("amount_cents must be more than zero")
    elif isinstance(promotion, Bundle):
        if promotion.quantity < 2:
            out.append("a bundle is at least 2 units")
        if promotion.price_cents <= 0:
            out.append("price_cents must be more than zero (cannabis is never given away)")
    elif promotion.buy < 1:
        out.append("buy is at least 1")
    elif not 0 < promotion.get_percent_bp <= BP:
        out.append("get_percent_bp is between 1 and 10000")
    w = promotion.window
    if w is not None:
        if w.starts_on and w.ends_on and w.ends_on < w.starts_on:
            out.append("the window ends before it starts")
        if not 0 <= w.from_minute < w.to_minute <= 24 * 60:
            out.append("the daily hours run from 0 to 1440 minutes, from before to")
        if any(d not in range(7) for d in w.weekdays):
            out.append("weekdays are 0 (Monday) to 6 (Sunday)")
    return out


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


def _bogo_eligible(promotion: BuyNGetOne | Bundle, line: PromotableLine) -> bool:
    if line.sold_by != "each":
        return False
    return _matches(promotion, line)


def _matches(promotion: BuyNGetOne | Bundle | AmountOff, line: PromotableLine) -> bool:
    if promotion.product_ids:
        return line.product_id in promotion.product_ids
    cats = set(promotion.categories) | ({promotion.category} if isinstance(promotion, BuyNGetOne) else set())
    cats.discard("")
    if cats and line.category not in cats:
        return False
    return not (promotion.brand and line.brand != promotion.brand)


def _pooled_units(promotion: BuyNGetOne | Bundle, lines: Sequence[PromotableLine]) -> list[tuple[int, int]]:
    units: list[tuple[int, int]] = []  # (unit price, line id), one entry per unit
    for line in lines:
        if _bogo_eligible(promotion, line):
            units.extend([(line.unit_price_cents, line.line_id)] * line.quantity)
    # High to low; ties broken by line id so the result does not depend on dict order.
    units.sort(key=lambda u: (-u[0], u[1]))
    return units


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
        per_line: dict[int, int] = {}
        if isinstance(promotion, CategoryPercent):
            cats = {promotion.category, *promotion.categories} - {""}
            for line in free:
                if line.category not in cats:
                    continue
                if promotion.brand and line.brand != promotion.brand:
                    continue
                amount = div_half_up(bases[line.line_id] * promotion.percent_bp, BP)
                if amount > 0:
                    applied[line.line_id] = AppliedPromotion(
                        promotion_id=promotion.id, name=promotion.name, amount_cents=amount
                    )
            continue
        if isinstance(promotion, AmountOff):
            for line in free:
                if _matches(promotion, line):
                    units_of = line.quantity if line.sold_by == "each" else 1
                    per_line[line.line_id] = promotion.amount_cents * units_of
        elif isinstance(promotion, Bundle):
            if promotion.quantity < 2:
                continue
            units = _pooled_units(promotion, free)
            n = promotion.quantity
            for start in range(0, len(units) - n + 1, n):
                group_units = units[start : start + n]
                saving = sum(u[0] for u in group_units) - promotion.price_cents
                if saving <= 0:
                    continue
                # split the group's saving over its units in proportion to their prices (largest remainder)
                total = sum(u[0] for u in group_units)
                shares = [saving * u[0] // total for u in group_units]
                for i in range(saving - sum(shares)):
                    shares[i] += 1
                for (_, line_id), share in zip(group_units, shares, strict=True):
                    per_line[line_id] = per_line.get(line_id, 0) + share
        else:
            if promotion.buy < 1:
                continue
            units = _pooled_units(promotion, free)
            group = promotion.buy + 1
            for i in range(group - 1, len(units), group):
                price, line_id = units[i]
                per_line[line_id] = per_line.get(line_id, 0) + div_half_up(
                    price * promotion.get_percent_bp, BP
                )
        for line_id, amount in per_line.items():
            if amount > 0:
                applied[line_id] = AppliedPromotion(
                    promotion_id=promotion.id, name=promotion.name, amount_cents=amount
                )
    return applied
