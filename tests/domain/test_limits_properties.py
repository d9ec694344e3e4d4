"""Properties of the limits engine over every jurisdiction, customer class and random carts."""

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.items import LimitAttributes
from hub.domain.limits import LimitCustomer, LimitItem, available_jurisdictions, evaluate, load_jurisdiction
from hub.domain.limits.rules import Jurisdiction

# Noon in the store's zone on an ordinary day, so "an hour earlier" is the same local day everywhere.
NOON_UTC = datetime(2025, 6, 14, 19, 0, tzinfo=UTC)
CATEGORIES = [
    "flower",
    "pre-roll",
    "infused-pre-roll",
    "concentrate",
    "vape",
    "edible",
    "beverage",
    "tincture",
    "capsule",
    "topical",
    "plant",
    "seed",
    "accessory",
]

SERVED = [
    (code, cls)
    for code in available_jurisdictions()
    for cls, policy in load_jurisdiction(code).classes.items()
    if policy.served
]


@st.composite
def attributes(draw):
    category = draw(st.sampled_from(CATEGORIES))
    net = draw(st.integers(0, 40_000))
    return LimitAttributes(
        category=category,
        net_weight_mg=net,
        concentrate_mg=draw(st.integers(0, net if category == "infused-pre-roll" else 10_000)),
        thc_mg=draw(st.integers(0, 2_000)),
        volume_ul=draw(st.integers(0, 1_000_000)),
        units=draw(st.integers(1, 3)),
    )


items = st.builds(LimitItem, attributes=attributes(), quantity=st.integers(1, 4))
carts = st.lists(items, max_size=5)
customers = st.sampled_from(SERVED).flatmap(
    lambda jc: st.tuples(
        st.just(jc[0]),
        st.builds(
            LimitCustomer, customer_class=st.just(jc[1]), age=st.one_of(st.none(), st.integers(18, 90))
        ),
    )
)


def _state(code: str, cls: str) -> dict[str, int] | None:
    return {} if load_jurisdiction(code).classes[cls].state_allotment == "required" else None


def _exact_amount(j: Jurisdiction, bucket_id: str, attrs: LimitAttributes) -> Fraction:
    """Independent arithmetic (fractions, not scaled integers) of one item's amount in a bucket."""
    total = Fraction(0)
    for c in j.buckets[bucket_id].contributions:
        if attrs.category not in c.categories:
            continue
        if c.thc_max_permille is not None or c.thc_min_permille is not None:
            if attrs.net_weight_mg == 0:
                continue  # potency tiers weigh plant material: nothing to weigh
            potency = Fraction(attrs.thc_mg * 1000, attrs.net_weight_mg)
            if c.thc_max_permille is not None and potency > c.thc_max_permille:
                continue
            if c.thc_min_permille is not None and potency <= c.thc_min_permille:
                continue
        if c.measure == "plant_mg":
            value = max(attrs.net_weight_mg - attrs.concentrate_mg, 0)
        else:
            value = getattr(attrs, c.measure)
        total += Fraction(value * c.num, c.den)
    return total


@settings(max_examples=200, deadline=None)
@given(customers, carts)
def test_never_allows_a_cart_over_a_cap(jc, cart):
    code, customer = jc
    j = load_jurisdiction(code)
    decision = evaluate(
        j, customer, [], cart, NOON_UTC, state_remaining=_state(code, customer.customer_class)
    )
    if not decision.allowed:
        return
    for rule in j.rules:
        if customer.customer_class not in rule.classes:
            continue
        if customer.age is not None and (
            (rule.min_age is not None and customer.age < rule.min_age)
            or (rule.max_age is not None and customer.age > rule.max_age)
        ):
            continue
        amount = sum(_exact_amount(j, rule.bucket, i.attributes) * i.quantity for i in cart)
        assert amount <= rule.limit, (rule.id, amount, rule.limit)


@settings(max_examples=200, deadline=None)
@given(customers, carts, items)
def test_adding_an_item_never_increases_a_remaining_amount(jc, cart, extra):
    code, customer = jc
    state = _state(code, customer.customer_class)
    before = evaluate(code, customer, [], cart, NOON_UTC, state_remaining=state)
    after = evaluate(code, customer, [], [*cart, extra], NOON_UTC, state_remaining=state)
    for bucket, left in after.remaining.items():
        assert left <= before.remaining.get(bucket, left), bucket
    if not before.allowed:
        assert not after.allowed, "adding to a refused cart cannot make it allowed"


@settings(max_examples=200, deadline=None)
@given(customers, carts, carts, st.integers(1, 3600))
def test_splitting_a_cart_never_escapes_a_day_or_rolling_limit(jc, first, second, gap_s):
    code, customer = jc
    j = load_jurisdiction(code)
    state = _state(code, customer.customer_class)
    # Local noon and an earlier purchase up to an hour before: same store day, inside any rolling window.
    local_noon = NOON_UTC.astimezone(j.timezone).replace(hour=12, minute=0, second=0)
    now = local_noon.astimezone(UTC)
    earlier = now - timedelta(seconds=gap_s)
    together = evaluate(j, customer, [], [*first, *second], now, state_remaining=state)
    windowed = {r.id for r in j.rules if r.window.kind != "transaction"}
    if not any(v.rule in windowed for v in together.violations):
        return
    step1 = evaluate(j, customer, [], first, earlier, state_remaining=state)
    history = [LimitItem(attributes=i.attributes, quantity=i.quantity, at=earlier) for i in first]
    step2 = evaluate(j, customer, history, second, now, state_remaining=state)
    assert not (step1.allowed and step2.allowed), "the split got around a day or rolling limit"
