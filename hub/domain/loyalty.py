"""Loyalty as data: how points are earned and redeemed, tiers and birthday offers, from ``[loyalty]`` in
store.toml, checked when the store loads it; and the ledger entry every change of a balance writes.

Earning: whole dollars paid before tax on eligible lines × ``points_per_dollar`` × the tier's multiplier
(× the birthday multiplier in the birthday window). Categories in ``excluded_categories`` earn nothing and
take no redemption: where a state forbids giving cannabis away as a reward (e.g. Cal. Bus. & Prof. Code
§26153, no free cannabis as part of a promotion) a store lists its cannabis categories there and points
only pay for accessories. The one-cent floor in ``pricing`` applies in any case.
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from hub.domain.catalog import Customer
from hub.domain.limits.rules import KNOWN_CATEGORIES as CATEGORIES
from hub.domain.pricing import LoyaltyPolicy

BP = 10_000


class Tier(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    min_lifetime_points: int
    multiplier_bp: int = BP  # 15000 = 1.5 points per point


class BirthdayOffer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    multiplier_bp: int = 2 * BP  # double points
    days_before: int = 3
    days_after: int = 3


class LoyaltyProgram(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    points_per_dollar: int = 1
    cents_per_point: int = 1  # 100 points = $1.00 off
    min_redeem_points: int = 100
    excluded_categories: tuple[str, ...] = ()
    tiers: tuple[Tier, ...] = ()
    birthday: BirthdayOffer | None = None


class LoyaltyEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One change of a customer's balance, written in the same transaction as its cause."""

    customer_id: str
    at: datetime
    delta: int
    balance: int
    reason: str  # "earned", "redeemed", "merged", "adjusted"
    receipt_number: int = 0
    staff: str = ""
    note: str = ""


def problems(program: LoyaltyProgram) -> list[str]:
    """Every mistake in the program as written (empty when it is good); the hub refuses to start otherwise."""
    out: list[str] = []
    if program.points_per_dollar < 0:
        out.append("points_per_dollar must not be negative")
    if program.cents_per_point <= 0:
        out.append("cents_per_point must be at least 1")
    if program.min_redeem_points < 0:
        out.append("min_redeem_points must not be negative")
    for c in program.excluded_categories:
        if c not in CATEGORIES:
            out.append(
                f"excluded_categories: unknown category {c!r} (one of {', '.join(sorted(CATEGORIES))})"
            )
    last = -1
    names: set[str] = set()
    for i, t in enumerate(program.tiers):
        if t.min_lifetime_points <= last:
            out.append(f"tiers[{i}] ({t.name}): tiers go up in min_lifetime_points")
        if t.multiplier_bp < BP:
            out.append(f"tiers[{i}] ({t.name}): multiplier_bp is at least 10000 (1x)")
        if t.name in names or not t.name:
            out.append(f"tiers[{i}]: tier names are unique and not empty")
        names.add(t.name)
        last = t.min_lifetime_points
    b = program.birthday
    if b is not None and (
        b.multiplier_bp < BP or not 0 <= b.days_before <= 31 or not 0 <= b.days_after <= 31
    ):
        out.append("birthday: multiplier_bp at least 10000, days_before/days_after 0 to 31")
    return out


def tier_of(program: LoyaltyProgram, customer: Customer | None) -> Tier | None:
    if customer is None:
        return None
    found = None
    for t in program.tiers:
        if customer.lifetime_points >= t.min_lifetime_points:
            found = t
    return found


def is_birthday_window(program: LoyaltyProgram, birth: date, today: date) -> bool:
    b = program.birthday
    if b is None:
        return False
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            day = birth.replace(year=year)
        except ValueError:  # 29 February
            day = date(year, 3, 1)
        if -b.days_before <= (today - day).days <= b.days_after:
            return True
    return False


def policy_for(program: LoyaltyProgram, customer: Customer | None, today: date) -> LoyaltyPolicy:
    """The pricing core's view of the program for this customer today."""
    multiplier = BP
    tier = tier_of(program, customer)
    if tier is not None:
        multiplier = multiplier * tier.multiplier_bp // BP
    if customer is not None and is_birthday_window(program, customer.birth_date, today):
        assert program.birthday is not None
        multiplier = multiplier * program.birthday.multiplier_bp // BP
    return LoyaltyPolicy(
        points_per_dollar=program.points_per_dollar,
        cents_per_point=program.cents_per_point,
        min_redeem_points=program.min_redeem_points,
        excluded_categories=program.excluded_categories,
        earn_multiplier_bp=multiplier,
    )


def groups_of(program: LoyaltyProgram, customer: Customer | None, customer_type: str = "") -> list[str]:
    """The promotion groups a customer belongs to: their own, their type ("medical") and their tier."""
    out = set(customer.groups) if customer else set()
    if customer_type and customer_type != "adult":
        out.add("medical")
    elif customer is not None and customer.customer_type == "medical":
        out.add("medical")
    tier = tier_of(program, customer)
    if tier is not None:
        out.add(tier.name)
    return sorted(out)


def book(
    customer: Customer, *, redeemed: int, earned: int, at: datetime, receipt_number: int, staff: str
) -> tuple[Customer, list[LoyaltyEntry]] | None:
    """The customer's new balance and the ledger entries for a sale; None when the points are no longer
    there (another register spent them meanwhile)."""
    balance = customer.loyalty_points
    entries: list[LoyaltyEntry] = []
    if redeemed:
        balance -= redeemed
        if balance < 0:
            return None
        entries.append(
            LoyaltyEntry(
                customer_id=customer.id,
                at=at,
                delta=-redeemed,
                balance=balance,
                reason="redeemed",
                receipt_number=receipt_number,
                staff=staff,
            )
        )
    if earned:
        balance += earned
        entries.append(
            LoyaltyEntry(
                customer_id=customer.id,
                at=at,
                delta=earned,
                balance=balance,
                reason="earned",
                receipt_number=receipt_number,
                staff=staff,
            )
        )
    updated = msgspec.structs.replace(
        customer, loyalty_points=balance, lifetime_points=customer.lifetime_points + earned
    )
    return updated, entries
