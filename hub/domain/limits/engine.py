"""The limits engine: may this customer buy this cart, and how much more of each bucket may they buy?

Pure and integer-only. Amounts inside a bucket are kept multiplied by the bucket's ``scale`` (the lcm of
its equivalency denominators), so pools like Colorado's "1 oz = 8 g concentrate = 800 mg THC" are exact.

History and the ledger layout. Only purchases inside the longest window of the customer's class matter;
``history_window_start`` gives that instant. The store keeps a per-customer allotment ledger keyed
``customer_key (32-byte keyed hash) | purchase time (8-byte big-endian µs since epoch, UTC) | sale id`` with a
msgpack ``LimitItem`` as the value, so loading a customer's history is one LMDB range scan from
``customer_key | window_start`` to the end of the customer's prefix: the cost is bounded by the window,
never by the customer's whole history. The engine also ignores anything older it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import msgspec

from hub.domain.items import LimitAttributes
from hub.domain.limits.rules import (
    KNOWN_CATEGORIES,
    Bucket,
    Jurisdiction,
    Rule,
    Window,
    load_jurisdiction,
)

__all__ = [
    "LimitCustomer",
    "LimitDecision",
    "LimitItem",
    "Violation",
    "evaluate",
    "format_amount",
    "history_window_start",
    "window_start",
]


class LimitItem(msgspec.Struct, frozen=True, kw_only=True):
    """One cart line, or one past purchase (then ``at`` is the sale time, UTC, aware)."""

    attributes: LimitAttributes
    quantity: int = 1
    at: datetime | None = None


class LimitCustomer(msgspec.Struct, frozen=True, kw_only=True):
    """Who the purchase is for, as the limits see it.

    ``customer_class``: adult, adult-nonresident, medical, caregiver, minor-patient.
    ``age``: the age of the person the cannabis is for (the patient, for a caregiver purchase); used by
    age tiers such as Colorado medical 18-20. Unknown age applies every tier (the stricter wins).
    """

    customer_class: str
    age: int | None = None


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    rule: str  # rule id from the jurisdiction file, or "state-allotment", "not-served", "unknown-category"
    bucket: str
    limit: int  # in the bucket's unit (mg, mg THC, ul, units)
    amount: int  # what the purchase would bring the window to, same unit
    message: str


class LimitDecision(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    remaining: dict[str, int]  # per bucket, after this cart, in the bucket's unit
    violations: list[Violation] = []
    warnings: list[str] = []


# ----------------------------------------------------------------------------------------------- windows


def window_start(window: Window, now: datetime, jurisdiction: Jurisdiction) -> datetime | None:
    """Earliest purchase time (UTC) that counts in ``window`` at ``now``; None for per-transaction.

    ``day`` and ``month`` are the store's local calendar (DESIGN.md: "the store's zone for per-day windows"),
    so midnight is computed in the store's zone, which is right on DST change days too. ``rolling:N`` is
    N x 24 h ending now; a purchase exactly N x 24 h ago has just left the window.
    """
    if window.kind == "transaction":
        return None
    if window.kind == "rolling":
        return now.astimezone(UTC) - timedelta(days=window.days)
    local = now.astimezone(jurisdiction.timezone).date()
    if window.kind == "month":
        local = local.replace(day=1)
    # US zones change at 02:00, so local midnight always exists and is unambiguous.
    return datetime.combine(local, time(0), tzinfo=jurisdiction.timezone).astimezone(UTC)


def _counts(window: Window, start: datetime | None, at: datetime) -> bool:
    if start is None:
        return False
    return at > start if window.kind == "rolling" else at >= start


def history_window_start(jurisdiction: str | Jurisdiction, customer_class: str, now: datetime) -> datetime:
    """The earliest purchase time that can matter for ``customer_class`` at ``now`` (UTC).

    Range-scan the customer's ledger from here. When every rule is per transaction, this is ``now``.
    """
    j = _jurisdiction(jurisdiction)
    _check_now(now)
    starts = [
        s
        for r in j.rules
        if customer_class in r.classes and (s := window_start(r.window, now, j)) is not None
    ]
    return min(starts, default=now.astimezone(UTC))


# ---------------------------------------------------------------------------------------------- amounts


def _measure(attrs: LimitAttributes, measure: str) -> int:
    if measure == "plant_mg":
        # The plant-material part of a product (infused pre-roll = net weight minus its concentrate).
        return max(attrs.net_weight_mg - attrs.concentrate_mg, 0)
    return int(getattr(attrs, measure))


def _scaled_amount(bucket: Bucket, attrs: LimitAttributes) -> int:
    total = 0
    for c in bucket.contributions:
        if attrs.category not in c.categories:
            continue
        if c.thc_max_permille is not None or c.thc_min_permille is not None:
            # Potency tiers (OH): THC share of net weight in per-mille, compared without division.
            thc, net = attrs.thc_mg * 1000, attrs.net_weight_mg
            if c.thc_max_permille is not None and thc > c.thc_max_permille * net:
                continue
            if c.thc_min_permille is not None and thc <= c.thc_min_permille * net:
                continue
        total += _measure(attrs, c.measure) * c.num * (bucket.scale // c.den)
    return total


def _check_item(item: LimitItem, history: bool) -> None:
    a = item.attributes
    if item.quantity < 0 or min(a.net_weight_mg, a.concentrate_mg, a.thc_mg, a.volume_ul, a.units) < 0:
        raise ValueError(f"negative quantity or attribute in a {a.category} line")
    if history and (item.at is None or item.at.tzinfo is None):
        raise ValueError("every history item needs an aware 'at' time")


def _check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("'now' must be an aware datetime (UTC)")


def format_amount(scaled: int, bucket: Bucket, *, round_up: bool) -> str:
    """``2600`` mg -> "2.6 g"; THC stays in mg; volume in ml; counts as units."""
    value = -(-scaled // bucket.scale) if round_up else scaled // bucket.scale
    if bucket.unit == "mg":
        return f"{_decimal(value, 1000)} g"
    if bucket.unit == "mg THC":
        return f"{value} mg THC"
    if bucket.unit == "ul":
        return f"{_decimal(value, 1000)} ml"
    return f"{value} unit{'s' if value != 1 else ''}"


def _decimal(value: int, per: int) -> str:
    whole, frac = divmod(value, per)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:0{len(str(per)) - 1}d}".rstrip("0")


# ---------------------------------------------------------------------------------------------- evaluate


def _jurisdiction(j: str | Jurisdiction) -> Jurisdiction:
    return j if isinstance(j, Jurisdiction) else load_jurisdiction(j)


def _applies(rule: Rule, customer: LimitCustomer) -> bool:
    if customer.customer_class not in rule.classes:
        return False
    if customer.age is None:
        return True  # unknown age: every tier applies, the stricter wins
    if rule.min_age is not None and customer.age < rule.min_age:
        return False
    return not (rule.max_age is not None and customer.age > rule.max_age)


def _usage(
    j: Jurisdiction,
    rules: Sequence[Rule],
    buckets: Sequence[Bucket],
    history: Iterable[LimitItem],
    now: datetime,
) -> dict[str, int]:
    """Per rule id, the scaled amount of its bucket that purchases inside its window already used. One pass
    over history, skipping items older than the longest window that applies."""
    starts = {r.id: window_start(r.window, now, j) for r in rules}
    dated = [s for r in rules if (s := starts[r.id]) is not None]
    earliest = min(dated, default=None)
    past: dict[str, list[tuple[datetime, int]]] = {b.id: [] for b in buckets}
    if earliest is not None:
        for item in history:
            _check_item(item, history=True)
            assert item.at is not None
            if item.at < earliest:
                continue
            for b in buckets:
                amount = _scaled_amount(b, item.attributes) * item.quantity
                if amount:
                    past[b.id].append((item.at, amount))
    return {
        r.id: sum(a for at, a in past[r.bucket] if _counts(r.window, starts[r.id], at))
        for r in rules
        if r.bucket in past
    }


def history_usage(
    jurisdiction: str | Jurisdiction, customer: LimitCustomer, history: Iterable[LimitItem], now: datetime
) -> dict[str, int]:
    """What the customer's past purchases already use of each rule that applies to them, for
    ``evaluate(..., usage=...)``."""
    j = _jurisdiction(jurisdiction)
    _check_now(now)
    rules = [r for r in j.rules if _applies(r, customer)]
    buckets = [j.buckets[b] for b in sorted({r.bucket for r in rules})]
    return _usage(j, rules, buckets, history, now)


class _Plan:
    """What ``evaluate`` derives from the jurisdiction and the customer alone, before any cart: computed
    once per (jurisdiction, class, age, state buckets), not on every scan. Jurisdictions and their rules
    and buckets are frozen, and the plan holds the jurisdiction it was made for (its id cannot be reused
    while the entry lives), so a plan never answers for another jurisdiction."""

    __slots__ = ("_amounts", "_known", "bad_state", "buckets", "jurisdiction", "name", "policy", "rules")

    def __init__(
        self, j: Jurisdiction, customer: LimitCustomer, state_remaining: Mapping[str, int] | None
    ) -> None:
        self.jurisdiction = j
        self.policy = j.classes.get(customer.customer_class)
        self.name = f"{j.name} {j.class_label(customer.customer_class)}"
        self.rules = [r for r in j.rules if _applies(r, customer)]
        bucket_ids = sorted({r.bucket for r in self.rules} | set(state_remaining or {}))
        # raised by evaluate where it always was (after the served check and the cart's own checks)
        self.bad_state = next(
            (
                f"state allotment names bucket {name_!r}, which {j.name} does not have"
                for name_ in state_remaining or {}
                if name_ not in j.buckets
            ),
            "",
        )
        self.buckets = [j.buckets[b] for b in bucket_ids if b in j.buckets]
        self._amounts: dict[LimitAttributes, tuple[tuple[str, int], ...]] = {}
        self._known: dict[str, bool] = {}

    def amounts(self, attrs: LimitAttributes) -> tuple[tuple[str, int], ...]:
        """Per bucket of the plan, what one unit of ``attrs`` counts (scaled), the buckets it counts in."""
        hit = self._amounts.get(attrs)
        if hit is None:
            if len(self._amounts) > 4096:
                self._amounts.clear()
            hit = self._amounts[attrs] = tuple(
                (b.id, amount) for b in self.buckets if (amount := _scaled_amount(b, attrs))
            )
        return hit

    def known(self, category: str) -> bool:
        """A category the limits know: a known one, or one some bucket of the jurisdiction counts."""
        hit = self._known.get(category)
        if hit is None:
            j = self.jurisdiction
            hit = self._known[category] = category in KNOWN_CATEGORIES or any(
                category in c.categories for b in j.buckets.values() for c in b.contributions
            )
        return hit


_plans: dict[tuple[int, str, int | None, tuple[str, ...]], _Plan] = {}


def _plan(j: Jurisdiction, customer: LimitCustomer, state_remaining: Mapping[str, int] | None) -> _Plan:
    key = (id(j), customer.customer_class, customer.age, tuple(state_remaining or ()))
    plan = _plans.get(key)
    if plan is None or plan.jurisdiction is not j:
        plan = _Plan(j, customer, state_remaining)
        if len(_plans) > 512:
            _plans.clear()
        _plans[key] = plan
    return plan


def evaluate(
    jurisdiction: str | Jurisdiction,
    customer: LimitCustomer,
    history: Iterable[LimitItem],
    cart: Sequence[LimitItem],
    now: datetime,
    *,
    state_remaining: Mapping[str, int] | None = None,
    usage: Mapping[str, int] | None = None,
) -> LimitDecision:
    """Decide whether ``cart`` may be sold now, given the customer's purchases in ``history``.

    ``usage``: what :func:`history_usage` returned for this customer (at a ``now`` no later than this
    one); when given, ``history`` is not read. The register computes it once per customer and sale, so each
    scan only adds up the cart.

    ``state_remaining``: the state's own figure of what the patient may still buy, per bucket id, in the
    bucket's unit (Metrc patient status, BioTrack ``CardLimit``, FL/PA registries), already converted by
    the state channel. When given, the stricter of the state's figure and ours applies.
    """
    j = _jurisdiction(jurisdiction)
    _check_now(now)
    plan = _plan(j, customer, state_remaining)
    policy, name = plan.policy, plan.name
    warnings: list[str] = []
    if not j.confirmed:
        warnings.append(f"{j.name}: purchase-limit figures are not confirmed against the regulation")
    if policy is None or not policy.served:
        why = (
            policy.note
            if policy and policy.note
            else "no purchase-limit rules are loaded for this customer type"
        )
        return LimitDecision(
            allowed=False,
            remaining={},
            violations=[
                Violation(
                    rule="not-served",
                    bucket="",
                    limit=0,
                    amount=0,
                    message=f"{name}: cannot sell, {why}",
                )
            ],
            warnings=warnings,
        )

    cart = list(cart)
    for item in cart:
        _check_item(item, history=False)
    if plan.bad_state:
        raise ValueError(plan.bad_state)
    rules, buckets = plan.rules, plan.buckets

    violations: list[Violation] = []
    for item in cart:
        cat = item.attributes.category
        if not plan.known(cat):
            violations.append(
                Violation(
                    rule="unknown-category",
                    bucket="",
                    limit=0,
                    amount=0,
                    message=f"{name}: product category {cat!r} is unknown, so its limits cannot be checked; "
                    "fix the product's category in the catalogue",
                )
            )

    # per bucket, what the cart adds (scaled); one pass over the lines, each line's amounts per bucket
    # computed once per plan (a scan re-checks the same lines with one more)
    cart_amount = dict.fromkeys((b.id for b in buckets), 0)
    for item in cart:
        for bucket_id, amount in plan.amounts(item.attributes):
            cart_amount[bucket_id] += amount * item.quantity

    used_by_rule = usage if usage is not None else _usage(j, rules, buckets, history, now)

    remaining: dict[str, int] = {}
    for r in rules:
        b = j.buckets[r.bucket]
        used = used_by_rule.get(r.id, 0)
        total = used + cart_amount[b.id]
        cap = r.limit * b.scale
        left = max(cap - total, 0) // b.scale
        remaining[b.id] = min(remaining.get(b.id, left), left)
        if cart_amount[b.id] > 0 and total > cap:
            violations.append(
                Violation(
                    rule=r.id,
                    bucket=b.id,
                    limit=r.limit,
                    amount=-(-total // b.scale),
                    message=f"{name}: {b.label} {format_amount(total, b, round_up=True)} of "
                    f"{format_amount(cap, b, round_up=False)} {r.window.phrase}",
                )
            )
        if r.disputed and cart_amount[b.id] > 0:
            warnings.append(f"{j.name}: rule {r.id} uses a disputed figure ({r.note or r.source})")

    if state_remaining is not None:
        for bucket_id, state_left in state_remaining.items():
            b = j.buckets[bucket_id]
            state_cap = max(int(state_left), 0) * b.scale
            amount = cart_amount[bucket_id]
            left = max(state_cap - amount, 0) // b.scale
            remaining[bucket_id] = min(remaining.get(bucket_id, left), left)
            if amount > state_cap:
                violations.append(
                    Violation(
                        rule="state-allotment",
                        bucket=bucket_id,
                        limit=max(int(state_left), 0),
                        amount=-(-amount // b.scale),
                        message=f"{name}: {b.label} {format_amount(amount, b, round_up=True)} of "
                        f"{format_amount(state_cap, b, round_up=False)} left in the state's allotment",
                    )
                )
    elif policy.state_allotment == "required":
        why = f" ({policy.note})" if policy.note else ""
        violations.append(
            Violation(
                rule="state-allotment",
                bucket="",
                limit=0,
                amount=0,
                message=f"{name}: the state's allotment for this patient is needed before selling{why}",
            )
        )
    elif policy.state_allotment == "recommended":
        warnings.append(f"{name}: the state's allotment was not checked; {j.name} holds its own figure")

    return LimitDecision(
        allowed=not violations,
        remaining=dict(sorted(remaining.items())),
        violations=violations,
        warnings=list(dict.fromkeys(warnings)),
    )


# Metrc's "Ounces" unit is the avoirdupois ounce, whatever a state's own rule calls an ounce (CA's 28.5 g)
METRC_OUNCE_MG = Decimal("28349.523125")


def state_remaining_from_ounces(
    jurisdiction: str | Jurisdiction, flower_ounces: float, thc_ounces: float
) -> dict[str, int]:
    """The state's figure (Metrc patient status: flower and THC ounces available) as amounts of this
    jurisdiction's medical buckets, for ``evaluate(state_remaining=...)``: flower to the bucket that counts
    flower by weight, THC to a bucket counted in mg THC if there is one. Rounded down: the state's figure
    is never stretched."""
    j = _jurisdiction(jurisdiction)
    medical = sorted({r.bucket for r in j.rules if "medical" in r.classes})
    flower = next(
        (
            b
            for b in medical
            if j.buckets[b].unit == "mg"
            and any(
                "flower" in c.categories and c.measure == "net_weight_mg" for c in j.buckets[b].contributions
            )
        ),
        None,
    )
    thc = next((b for b in medical if j.buckets[b].unit == "mg THC"), None)

    def mg(ounces: float) -> int:
        # the figure arrives as a float: settle it at 1/100 mg before rounding down to whole mg, so that
        # 2.5 g sent as 0.08818490487 oz is 2500 mg again, not 2499
        exact = (Decimal(str(max(ounces, 0.0))) * METRC_OUNCE_MG).quantize(Decimal("0.01"))
        return int(exact)

    out: dict[str, int] = {}
    if flower is not None:
        out[flower] = mg(flower_ounces)
    if thc is not None:
        out[thc] = mg(thc_ounces)
    return out
