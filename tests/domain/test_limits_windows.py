"""Windows: rolling N days at their edges, the store's local midnight (DST days included), calendar months,
and the history range a store must load."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain.items import LimitAttributes
from hub.domain.limits import (
    LimitCustomer,
    LimitItem,
    evaluate,
    history_window_start,
    load_jurisdiction,
    store_jurisdiction,
)

LA = ZoneInfo("America/Los_Angeles")


def bought(at: datetime, category: str = "flower", **amounts: int) -> LimitItem:
    return LimitItem(attributes=LimitAttributes(category=category, **amounts), at=at)


def cart(category: str = "flower", **amounts: int) -> list[LimitItem]:
    return [LimitItem(attributes=LimitAttributes(category=category, **amounts))]


# (jurisdiction, class, days, bucket, category, measure, limit) — rolling windows from purchase-limits.md
ROLLING = [
    ("AZ", "medical", 14, "total", "flower", "net_weight_mg", 70_873),
    ("FL", "medical", 35, "smokable", "flower", "net_weight_mg", 70_873),
    ("FL", "medical", 70, "edible-thc", "edible", "thc_mg", 4_200),
    ("MO", "medical", 30, "mme", "flower", "net_weight_mg", 170_097),
    ("MD", "medical", 30, "flower", "flower", "net_weight_mg", 120_000),
    ("OH", "medical", 90, "ninety-day-supply", "flower", "net_weight_mg", 226_796),
    ("PA", "medical", 90, "mmj-units", "vape", "units", 192),
]


@pytest.mark.parametrize("code, cls, days, bucket, category, measure, limit", ROLLING)
def test_rolling_window_edges(code, cls, days, bucket, category, measure, limit):
    now = datetime(2025, 7, 20, 17, 30, tzinfo=UTC)
    customer = LimitCustomer(customer_class=cls, age=40)
    state = {} if load_jurisdiction(code).classes[cls].state_allotment == "required" else None
    used = {measure: limit}
    just_inside = now - timedelta(days=days) + timedelta(seconds=1)
    just_outside = now - timedelta(days=days)

    inside = evaluate(
        code,
        customer,
        [bought(just_inside, category, **used)],
        cart(category, **{measure: 1}),
        now,
        state_remaining=state,
    )
    assert not inside.allowed, "a purchase one second inside the window still counts"
    assert inside.remaining[bucket] == 0

    outside = evaluate(
        code,
        customer,
        [bought(just_outside, category, **used)],
        cart(category, **{measure: 1}),
        now,
        state_remaining=state,
    )
    assert outside.allowed, outside.violations
    assert history_window_start(code, cls, now) <= just_outside


def test_store_local_midnight_not_utc_midnight():
    # CA adult-use is per day in Los Angeles. 07:59 UTC on 14 June is 00:59 PDT: today.
    now = datetime(2025, 6, 14, 23, 0, tzinfo=LA)
    customer = LimitCustomer(customer_class="adult")
    before_midnight = datetime(2025, 6, 13, 23, 59, 59, tzinfo=LA)
    at_midnight = datetime(2025, 6, 14, 0, 0, tzinfo=LA)
    d = evaluate(
        "CA", customer, [bought(before_midnight, net_weight_mg=28_500)], cart(net_weight_mg=28_500), now
    )
    assert d.allowed
    d = evaluate("CA", customer, [bought(at_midnight, net_weight_mg=1)], cart(net_weight_mg=28_500), now)
    assert not d.allowed
    assert (
        d.violations[0].message
        == "California adult-use: non-concentrated cannabis 28.501 g of 28.5 g per day"
    )


def test_spring_forward_day_midnight():
    # 2025-03-09: Los Angeles springs forward at 02:00; that day's midnight is 08:00 UTC (PST).
    now = datetime(2025, 3, 9, 20, 0, tzinfo=LA)  # PDT, = 2025-03-10 03:00 UTC
    customer = LimitCustomer(customer_class="adult")
    last_night = datetime(2025, 3, 9, 7, 59, 59, tzinfo=UTC)
    this_morning = datetime(2025, 3, 9, 8, 0, tzinfo=UTC)
    assert history_window_start("CA", "adult", now) == this_morning
    assert evaluate(
        "CA", customer, [bought(last_night, net_weight_mg=28_500)], cart(net_weight_mg=1), now
    ).allowed
    assert not evaluate(
        "CA", customer, [bought(this_morning, net_weight_mg=28_500)], cart(net_weight_mg=1), now
    ).allowed


def test_fall_back_day_is_25_hours_long():
    # 2025-11-02: Los Angeles falls back; midnight is 07:00 UTC (PDT) and the day lasts 25 h. A purchase at
    # 00:30 local is still "today" at 23:30 local, 24 h later in UTC: a 24-hour window would forget it.
    early = datetime(2025, 11, 2, 0, 30, tzinfo=LA)
    now = datetime(2025, 11, 2, 23, 30, tzinfo=LA)
    assert now.astimezone(UTC) - early.astimezone(UTC) == timedelta(hours=24)
    customer = LimitCustomer(customer_class="adult")
    d = evaluate(
        "CA",
        customer,
        [bought(early, category="vape", net_weight_mg=8_000)],
        cart("vape", net_weight_mg=1),
        now,
    )
    assert not d.allowed
    assert history_window_start("CA", "adult", now) == datetime(2025, 11, 2, 7, 0, tzinfo=UTC)


def test_store_time_zone_override_moves_midnight():
    # A Florida panhandle store on Central time. FL has no day windows, so use CA rules in a Denver store.
    now = datetime(2025, 6, 14, 6, 30, tzinfo=UTC)  # 23:30 PDT on the 13th, 00:30 MDT on the 14th
    purchase = datetime(2025, 6, 14, 6, 0, tzinfo=UTC)  # 23:00 PDT / 00:00 MDT
    customer = LimitCustomer(customer_class="adult")
    la = evaluate("CA", customer, [bought(purchase, net_weight_mg=28_500)], cart(net_weight_mg=1), now)
    denver = evaluate(
        store_jurisdiction("CA", "America/Denver"),
        customer,
        [bought(purchase - timedelta(seconds=1), net_weight_mg=28_500)],
        cart(net_weight_mg=1),
        now,
    )
    assert not la.allowed  # same PDT day
    assert denver.allowed  # 23:59:59 MDT yesterday


def test_calendar_month_starts_at_local_midnight_on_the_first():
    # Michigan medical: 2.5 oz per day and 10 oz (283.495 g) per calendar month, Detroit time.
    detroit = ZoneInfo("America/Detroit")
    customer = LimitCustomer(customer_class="medical", age=50)
    now = datetime(2025, 4, 20, 10, 0, tzinfo=detroit)
    march_31 = [bought(datetime(2025, 3, 31, 23, 59, 59, tzinfo=detroit), net_weight_mg=70_000)]
    april = [
        bought(datetime(2025, 4, day, 0, 0, tzinfo=detroit), net_weight_mg=70_000) for day in (1, 8, 15, 19)
    ]
    assert evaluate("MI", customer, march_31 + april[:3], cart(net_weight_mg=70_000), now).allowed
    assert evaluate("MI", customer, april, cart(net_weight_mg=3_495), now).allowed
    d = evaluate("MI", customer, april, cart(net_weight_mg=3_496), now)
    assert [v.rule for v in d.violations] == ["mi-med-month"]
    assert (
        d.violations[0].message
        == "Michigan medical: cannabis (total) 283.496 g of 283.495 g per calendar month"
    )


def test_per_transaction_rules_ignore_history():
    now = datetime(2025, 6, 14, 18, 0, tzinfo=UTC)
    customer = LimitCustomer(customer_class="adult")
    earlier_today = [bought(now - timedelta(minutes=5), net_weight_mg=30_000)]
    assert evaluate("IL", customer, earlier_today, cart(net_weight_mg=30_000), now).allowed
    assert history_window_start("IL", "adult", now) == now


def test_history_window_start_is_the_longest_window():
    now = datetime(2025, 6, 14, 18, 0, tzinfo=UTC)
    # FL: 35 and 70 days -> 70.
    assert history_window_start("FL", "medical", now) == now - timedelta(days=70)
    # MI medical: day and calendar month -> 1 June 00:00 Detroit (EDT, UTC-4).
    assert history_window_start("MI", "medical", now) == datetime(2025, 6, 1, 4, 0, tzinfo=UTC)


def test_history_outside_the_window_is_ignored_whatever_it_holds():
    now = datetime(2025, 6, 14, 18, 0, tzinfo=UTC)
    start = history_window_start("AZ", "medical", now)
    # Years of old purchases, each alone over the cap, change nothing.
    old = [bought(start - timedelta(days=d), net_weight_mg=1_000_000) for d in range(1, 2000)]
    d = evaluate("AZ", LimitCustomer(customer_class="medical"), old, cart(net_weight_mg=70_873), now)
    assert d.allowed


def test_history_needs_aware_times():
    now = datetime(2025, 6, 14, 18, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        evaluate(
            "AZ",
            LimitCustomer(customer_class="medical"),
            [bought(datetime(2025, 6, 14), net_weight_mg=1)],
            cart(net_weight_mg=1),
            now,
        )
