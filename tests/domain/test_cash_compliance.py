from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.cash_compliance import CashEvent, CashPolicy, assess, flags_for_sale

T0 = datetime(2026, 3, 14, 15, 0, tzinfo=UTC)


def cash(customer, hours, amount, n):
    return CashEvent(
        customer_id=customer, at=T0 + timedelta(hours=hours), cash_cents=amount, receipt_number=n
    )


def test_9900_then_200_within_24h_is_flagged():
    events = [cash("alice", 0, 990_000, 1), cash("alice", 20, 20_000, 2)]
    flags = assess(events)
    assert len(flags) == 1
    f = flags[0]
    assert (f.kind, f.customer_id, f.total_cents, f.receipt_numbers) == (
        "form_8300",
        "alice",
        1_010_000,
        (1, 2),
    )
    assert "$10,100.00" in f.sentence and "Form 8300" in f.sentence
    # and the register learns it at the second sale
    assert [x.kind for x in flags_for_sale(events[:1], events[1])] == ["form_8300"]


def test_two_customers_are_never_merged():
    events = [cash("alice", 0, 990_000, 1), cash("bob", 1, 20_000, 2)]
    assert assess(events) == []
    assert flags_for_sale(events[:1], events[1]) == []


def test_anonymous_cash_is_not_related():
    assert assess([cash("", 0, 990_000, 1), cash("", 1, 20_000, 2)]) == []


def test_exactly_10000_is_not_over_and_24h_boundary():
    assert assess([cash("a", 0, 500_000, 1), cash("a", 1, 500_000, 2)]) == []  # $10,000.00 is not "more than"
    assert (
        len(assess([cash("a", 0, 500_000, 1), cash("a", 24, 500_001, 2)])) == 1
    )  # exactly 24 h apart: related
    assert assess([cash("a", 0, 500_000, 1), cash("a", 24.01, 500_001, 2)]) == []


def test_growing_episode_is_one_flag():
    events = [cash("a", 0, 990_000, 1), cash("a", 2, 20_000, 2), cash("a", 3, 30_000, 3)]
    flags = assess(events)
    assert len(flags) == 1 and flags[0].receipt_numbers == (1, 2, 3) and flags[0].total_cents == 1_040_000
    assert flags[0].flag_id == "form_8300:a:1"


def test_refund_reduces_the_aggregate():
    events = [cash("a", 0, 990_000, 1), cash("a", 1, -50_000, 2), cash("a", 2, 20_000, 3)]
    assert assess(events) == []


def test_structuring_several_sales_just_under_a_threshold():
    events = [cash("s", 0, 290_000, 1), cash("s", 3, 295_000, 2), cash("s", 7, 280_000, 3)]
    flags = assess(events)
    assert [f.kind for f in flags] == ["structuring"]
    assert flags[0].threshold_cents == 300_000 and flags[0].receipt_numbers == (1, 2, 3)
    assert "just under $3,000.00" in flags[0].sentence
    # two are not "several"; spread over days they are not a pattern
    assert assess(events[:2]) == []
    spread = [cash("s", 0, 290_000, 1), cash("s", 30, 295_000, 2), cash("s", 60, 280_000, 3)]
    assert assess(spread) == []
    # another customer's near-threshold sale does not complete the pattern
    assert assess([*events[:2], cash("t", 4, 290_000, 9)]) == []


def test_policy_is_configurable():
    p = CashPolicy(structuring_thresholds_cents=(100_000,), structuring_min_sales=2)
    flags = assess([cash("s", 0, 95_000, 1), cash("s", 1, 99_999, 2)], p)
    assert [f.kind for f in flags] == ["structuring"]


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 96), st.integers(1, 600_000)), max_size=25
    )
)
def test_form_8300_flags_match_brute_force(specs):
    events = [cash(c, h, amt, i) for i, (c, h, amt) in enumerate(specs)]
    flagged = {f.customer_id for f in assess(events) if f.kind == "form_8300"}
    expected = set()
    for e in events:
        window = [
            x for x in events if x.customer_id == e.customer_id and e.at - timedelta(hours=24) <= x.at <= e.at
        ]
        if sum(x.cash_cents for x in window) > 1_000_000:
            expected.add(e.customer_id)
    assert flagged == expected
