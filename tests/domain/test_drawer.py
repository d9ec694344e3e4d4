from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from hub.domain.catalog import Refusal
from hub.domain.drawer import (
    DrawerEvent,
    DrawerSession,
    change_refusal,
    close_summary,
    count_of,
    fold_cash_sales,
    hand_over,
    open_session,
    record,
    record_deposit,
    register_view,
    sign_off,
    submit_blind_count,
)

T0 = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)
FLOAT = {"B20": 5, "B10": 5, "B5": 10, "B1": 32, "C25": 40, "C10": 50, "C5": 40, "C1": 100}  # $250.00


def t(minutes):
    return T0 + timedelta(minutes=minutes)


def opened() -> DrawerSession:
    s = open_session("d1", "reg-1", FLOAT, counted_by="ana", witness="ben", at=T0)
    assert isinstance(s, DrawerSession)
    return s


def ok(result):
    assert not isinstance(result, Refusal), result
    return result


def sale(amount, n=1):
    return DrawerEvent(kind="cash_sale", amount_cents=amount, at=t(n), by="ana", receipt_number=n)


def test_count_by_denomination():
    c = count_of(FLOAT)
    assert c.total_cents == 25_000
    assert count_of({"B1": 3, "C100": 2}).total_cents == 500  # $1 bills and $1 coins both count
    assert count_of({"B3": 1}).code == "bad_denomination"
    assert count_of({"B1": -1}).code == "bad_count"
    assert count_of({"B1": True}).code == "bad_count"
    assert count_of({"B1": 0}).pieces == {}


def test_open_needs_a_witness_and_one_drawer_per_register():
    assert open_session("d1", "reg-1", FLOAT, counted_by="ana", witness="", at=T0).code == "witness_required"
    assert (
        open_session("d1", "reg-1", FLOAT, counted_by="ana", witness="ana", at=T0).code == "witness_required"
    )
    r = open_session(
        "d2", "reg-1", FLOAT, counted_by="ana", witness="ben", at=T0, open_session_on_register="d1"
    )
    assert r.code == "drawer_already_open"
    s = opened()
    assert s.opening.count.total_cents == 25_000 and s.status == "open"


def test_expected_follows_every_event():
    s = opened()
    s = ok(record(s, sale(4060, 1)))
    s = ok(
        record(s, DrawerEvent(kind="cash_refund", amount_cents=2088, at=t(2), by="ana", reason="return #7"))
    )
    s = ok(
        record(
            s,
            DrawerEvent(
                kind="drop",
                amount_cents=10_000,
                at=t(3),
                by="ana",
                reason="over $300",
                manager_id="mia",
                override_ref="a1",
                bag_number="BAG-1",
            ),
        )
    )
    s = ok(
        record(
            s,
            DrawerEvent(
                kind="paid_out",
                amount_cents=1500,
                at=t(4),
                by="ana",
                reason="ice melt",
                manager_id="mia",
                override_ref="a2",
            ),
        )
    )
    s = ok(
        record(
            s,
            DrawerEvent(
                kind="adjustment",
                amount_cents=-25,
                at=t(5),
                by="ana",
                reason="coin dropped",
                manager_id="mia",
                override_ref="a3",
            ),
        )
    )
    assert s.expected_cents == 25_000 + 4060 - 2088 - 10_000 - 1500 - 25


@pytest.mark.parametrize("kind", ["drop", "paid_out", "adjustment", "paid_in"])
def test_manager_and_reason_needed_for_cash_movements(kind):
    s = opened()
    base = dict(kind=kind, amount_cents=500, at=t(1), by="ana", bag_number="B1")
    assert record(s, DrawerEvent(**base, reason="why")).code == "override_required"
    assert record(s, DrawerEvent(**base, manager_id="mia", override_ref="a")).code == "reason_required"
    assert isinstance(
        record(s, DrawerEvent(**base, reason="why", manager_id="mia", override_ref="a")), DrawerSession
    )


def test_cannot_pay_out_more_than_the_drawer_holds():
    s = opened()
    big = DrawerEvent(
        kind="paid_out", amount_cents=25_001, at=t(1), by="ana", reason="x", manager_id="m", override_ref="a"
    )
    r = record(s, big)
    assert (
        r.code == "not_enough_cash" and "250" not in r.message
    )  # the refusal does not leak the expected cash
    assert record(s, sale(0)).code == "bad_amount"


def test_blind_count_balanced_closes_without_sign_off():
    s = ok(record(opened(), sale(4060)))
    assert register_view(s).variance_cents is None
    assert "expected" not in msgspec.json.encode(register_view(s)).decode()
    assert close_summary(s).code == "count_not_submitted"
    counted = ok(submit_blind_count(s, {**FLOAT, "B20": 7, "C10": 56}, counted_by="ana", at=t(60)))
    assert counted.status == "closed" and counted.variance_cents == 0
    summary = close_summary(counted)
    assert (summary.expected_cents, summary.counted_cents, summary.needs_sign_off) == (29_060, 29_060, False)
    assert record(counted, sale(100)).code == "drawer_not_open"


def test_five_dollars_short_needs_manager_note():
    s = ok(record(opened(), sale(4060)))
    short = {**FLOAT, "B20": 7, "C10": 56, "B5": 9}  # one $5 bill missing
    counted = ok(submit_blind_count(s, short, counted_by="ana", at=t(60)))
    assert counted.status == "counted" and counted.variance_cents == -500
    assert register_view(counted).variance_cents == -500
    assert close_summary(counted).needs_sign_off
    assert (
        record_deposit(counted, bag_number="D1", amount_cents=100, sealed_by="mia", at=t(61)).code
        == "drawer_not_closed"
    )
    assert sign_off(counted, manager_id="mia", note="  ", at=t(62)).code == "note_required"
    assert sign_off(counted, manager_id="", note="x", at=t(62)).code == "override_required"
    closed = ok(sign_off(counted, manager_id="mia", note="Change error on a $20; reviewed camera", at=t(62)))
    assert closed.status == "closed" and close_summary(closed).signed_off_by == "mia"
    assert sign_off(closed, manager_id="mia", note="again", at=t(63)).code == "nothing_to_sign"
    assert submit_blind_count(closed, FLOAT, counted_by="ana", at=t(64)).code == "drawer_not_open"


def test_deposit_record():
    counted = ok(submit_blind_count(opened(), FLOAT, counted_by="ana", at=t(60)))
    assert (
        record_deposit(counted, bag_number="", amount_cents=100, sealed_by="mia", at=t(61)).code
        == "bag_required"
    )
    assert (
        record_deposit(counted, bag_number="D1", amount_cents=25_001, sealed_by="mia", at=t(61)).code
        == "bad_amount"
    )
    done = ok(
        record_deposit(
            counted, bag_number="D1", amount_cents=15_000, sealed_by="mia", witness="ben", at=t(61)
        )
    )
    assert done.deposit.amount_cents == 15_000
    assert (
        record_deposit(done, bag_number="D2", amount_cents=1, sealed_by="mia", at=t(62)).code
        == "deposit_recorded"
    )


def test_hand_over_counts_and_carries_the_float():
    s = ok(record(opened(), sale(1000)))
    handed = {**FLOAT, "B10": 6}
    old, new = ok(hand_over(s, handed, outgoing="ana", incoming="cal", new_session_id="d2", at=t(240)))
    assert old.status == "closed" and old.handed_over_to == "d2" and old.closing.witness == "cal"
    assert new.status == "open" and new.opening.count.total_cents == 26_000 and new.handed_over_from == "d1"
    assert new.opening.counted_by == "cal"
    assert (
        hand_over(s, handed, outgoing="ana", incoming="ana", new_session_id="d2", at=t(240)).code
        == "witness_required"
    )
    # a short hand-over leaves the old session waiting for sign-off
    old, _ = ok(hand_over(s, FLOAT, outgoing="ana", incoming="cal", new_session_id="d2", at=t(240)))
    assert old.status == "counted" and old.variance_cents == -1000


def test_session_round_trips():
    s = ok(record(opened(), sale(4060)))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=DrawerSession) == s


def test_a_manager_opens_the_drawer_as_counter_or_witness() -> None:
    from hub.domain.drawer import may_open

    assert may_open("manager", "budtender") is None
    assert may_open("technician", "admin") is None
    refusal = may_open("budtender", "technician")
    assert refusal is not None and refusal.code == "manager_required"


def test_change_comes_out_of_the_cash_the_drawer_held_before_the_sale() -> None:
    from hub.domain.drawer import change_refusal

    s = opened()
    held = s.expected_cents
    assert change_refusal(s, held) is None
    assert change_refusal(s, 0) is None
    r = change_refusal(s, held + 1)
    assert isinstance(r, Refusal) and r.code == "not_enough_change"
    assert "$250.00" not in r.message  # the expected cash is never told before the blind count
    after_sale = ok(record(s, sale(5_000)))
    assert change_refusal(after_sale, held + 1) is None
    assert change_refusal(None, 1).code == "no_drawer"  # type: ignore[union-attr]


def test_folding_cash_sales_into_running_totals_changes_no_sum():
    """The store keeps a session's cash sales apart, as running totals (hub/sale/drawer.py put_drawer): the
    expected cash, the change a drawer can give and the close summary read the same before and after."""
    s = ok(record(opened(), sale(1_000, 1)))
    s = ok(record(s, sale(2_500, 2)))
    s = ok(
        record(
            s,
            DrawerEvent(
                kind="paid_out",
                amount_cents=700,
                at=t(3),
                by="ana",
                reason="ice",
                manager_id="mgr",
                override_ref="A-1",
            ),
        )
    )
    folded, sales = fold_cash_sales(s)
    assert [e.receipt_number for e in sales] == [1, 2]
    assert [e.kind for e in folded.events] == ["paid_out"]
    assert (folded.folded_sales, folded.folded_sales_cents) == (2, 3_500)
    assert folded.expected_cents == s.expected_cents == 25_000 + 3_500 - 700
    assert folded.cash_sales == s.cash_sales == 2 and folded.cash_sales_cents == s.cash_sales_cents == 3_500
    # the limit of what the drawer can pay out, to the cent, from the totals
    assert change_refusal(folded, 27_800) is None and change_refusal(folded, 27_801) is not None
    # a sale recorded on a folded session, folded again: counted once, never twice
    again = ok(record(folded, sale(100, 4)))
    assert again.expected_cents == 27_800 + 100 and again.cash_sales == 3
    refolded, new = fold_cash_sales(again)
    assert [e.receipt_number for e in new] == [4] and refolded.expected_cents == 27_900
    assert fold_cash_sales(refolded) == (refolded, ())
    counted = ok(
        submit_blind_count(
            refolded, {"B100": 2, "B50": 1, "B20": 1, "B5": 1, "B2": 2}, counted_by="ana", at=t(9)
        )
    )
    summary = close_summary(counted)
    assert summary.cash_sales_cents == 3_600 and summary.paid_outs_cents == 700
    assert summary.expected_cents == 27_900 and summary.variance_cents == 0
