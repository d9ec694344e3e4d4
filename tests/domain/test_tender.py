import msgspec
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.catalog import Refusal
from hub.domain.tender import Settlement, Tender, cents, check_tender, remaining_cents, settle


def cash(n):
    return Tender(kind="cash", amount_cents=n)


def debit(n):
    return Tender(kind="debit", amount_cents=n, reference="APPR123", terminal_id="t1", card_last4="4242")


def test_cash_with_change():
    s = settle(4060, [cash(5000)])
    assert isinstance(s, Settlement)
    assert (s.tendered_cents, s.change_cents, s.drawer_delta_cents) == (5000, 940, 4060)
    assert s.by_kind() == {"cash": 4060}


def test_exact_debit():
    s = settle(4060, [debit(4060)])
    assert s.change_cents == 0 and s.drawer_delta_cents == 0 and s.by_kind() == {"debit": 4060}


def test_split_debit_then_cash_change_from_cash_only():
    s = settle(10_000, [debit(6000), cash(5000)])
    assert s.change_cents == 1000
    assert s.by_kind() == {"debit": 6000, "cash": 4000}
    assert s.drawer_delta_cents == 4000


def test_debit_may_not_exceed_what_is_left():
    r = settle(4060, [debit(5000)])
    assert isinstance(r, Refusal) and r.code == "overpay_non_cash" and "$40.60" in r.message
    r = settle(10_000, [cash(8000), debit(3000)])
    assert r.code == "overpay_non_cash"


def test_cashless_atm_rounds_up_and_change_comes_from_the_drawer():
    s = settle(4060, [Tender(kind="cashless_atm", amount_cents=5000, reference="ATM9")])
    assert s.change_cents == 940 and s.drawer_delta_cents == -940
    assert s.by_kind() == {"cashless_atm": 4060}


def test_short_and_extra_and_bad_amounts():
    assert settle(4060, [cash(4000)]).code == "short_tender"
    assert settle(4060, [cash(5000), cash(100)]).code == "extra_tender"
    assert settle(4060, [cash(0)]).code == "bad_amount"
    assert settle(4060, [cash(-5)]).code == "bad_amount"
    assert settle(-1, []).code == "negative_total"
    assert isinstance(settle(0, []), Settlement)


def test_terminal_offline_means_cash_only():
    assert check_tender(4060, [], debit(4060), terminal_online=False).code == "terminal_offline"
    assert check_tender(4060, [], cash(4060), terminal_online=False) is None
    assert remaining_cents(4060, [cash(1000)]) == 3060 and remaining_cents(100, [cash(500)]) == 0


def test_money_format():
    assert (cents(0), cents(5), cents(123456), cents(-50)) == ("$0.00", "$0.05", "$1,234.56", "-$0.50")


def test_settlement_round_trips():
    s = settle(10_000, [debit(6000), cash(5000)])
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=Settlement) == s


@given(
    st.integers(1, 10**6),
    st.lists(
        st.tuples(st.sampled_from(["cash", "debit", "cashless_atm"]), st.integers(1, 10**6)), max_size=4
    ),
)
def test_settlement_ties_out(total, specs):
    result = settle(total, [Tender(kind=k, amount_cents=a) for k, a in specs])
    if isinstance(result, Settlement):
        assert result.tendered_cents - result.change_cents == total
        assert sum(result.by_kind().values()) == total
        assert all(v >= 0 for v in result.by_kind().values())
        assert result.change_cents <= sum(t.amount_cents for t in result.tenders if t.kind != "debit")


def test_cashless_atm_rounds_up_to_the_increment_with_the_fee() -> None:
    from hub.domain.tender import cashless_atm_withdrawal

    w = cashless_atm_withdrawal(4310, 500, 300)
    assert (w.withdrawal_cents, w.fee_cents, w.change_cents, w.charged_cents) == (4500, 300, 190, 4800)
    exact = cashless_atm_withdrawal(4500, 500, 300)
    assert (exact.withdrawal_cents, exact.change_cents) == (4500, 0)
    assert cashless_atm_withdrawal(4501, 500, 0).withdrawal_cents == 5000
    s = settle(4310, [Tender(kind="cashless_atm", amount_cents=4500, fee_cents=300)])
    assert isinstance(s, Settlement)
    assert (s.change_cents, s.drawer_delta_cents, s.by_kind()) == (190, -190, {"cashless_atm": 4310})


def test_card_declines_read_as_plain_sentences() -> None:
    from hub.domain import card_outcome

    assert "not enough money" in card_outcome.declined("51").text
    assert "PIN" in card_outcome.declined("55").text
    assert card_outcome.declined("zz").reason == "The bank declined the card."
    assert "nothing was charged" in card_outcome.timed_out("not_charged").text
