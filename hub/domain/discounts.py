"""Manual discounts and who may give them (the cart and pricing share them; neither imports the other)."""

from __future__ import annotations

from typing import Literal

import msgspec

from hub.domain.promotions import BP
from hub.domain.tax import div_half_up


class Discount(msgspec.Struct, frozen=True, kw_only=True):
    """A manual discount on a line or on the cart. ``value`` is basis points for ``percent`` (1000 = 10 %)
    and cents for ``fixed``."""

    kind: Literal["percent", "fixed"]
    value: int
    reason: str
    applied_by: str = ""  # staff id
    override_ref: str = ""  # audit reference of the manager override when beyond the role's threshold
    label: str = ""  # printed on the receipt; defaults to the reason
    approved_by: str = ""  # the manager who approved it, with ``override_ref``


class DiscountPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The largest discount each role may give on its own, as an effective percentage of the amount it
    applies to; beyond it a manager PIN is needed (audited). Unknown roles may give none."""

    max_percent_bp_by_role: dict[str, int] = msgspec.field(
        default_factory=lambda: {"budtender": 1000, "lead": 2000, "manager": BP, "admin": BP}
    )


def discount_amount(discount: Discount, amount_cents: int) -> int:
    """The cents a discount takes off ``amount_cents`` before any clipping."""
    if discount.kind == "percent":
        return div_half_up(amount_cents * discount.value, BP)
    return discount.value


def needs_manager(discount: Discount, amount_cents: int, role: str, policy: DiscountPolicy) -> bool:
    """True when the discount exceeds what ``role`` may give alone (and has no override reference)."""
    if discount.override_ref:
        return False
    limit_bp = policy.max_percent_bp_by_role.get(role, 0)
    if amount_cents <= 0:
        return False  # nothing to take off: the discount gives nothing
    # effective bp = amount / base; compare cross-multiplied to stay exact
    return discount_amount(discount, amount_cents) * BP > limit_bp * amount_cents
