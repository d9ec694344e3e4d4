"""The sale commit's rules, decided without a store: what a sale writes, and each reason it is refused
(the allotment at its limit and one milligram over, cash without an open drawer, stock gone since the cart
was built, points spent elsewhere)."""

from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from hub.domain.cart import Cart, ManagerOverride, WeightReading, add_package, new_cart, redeem_points
from hub.domain.catalog import Package, Product, Refusal
from hub.domain.drawer import DrawerSession, open_session
from hub.domain.items import LimitAttributes
from hub.domain.limits import LimitCustomer, evaluate, load_jurisdiction
from hub.domain.pricing import LoyaltyPolicy, PricedCart, price_cart
from hub.domain.receipt import StoreIdentity
from hub.domain.sale_plan import (
    Buyer,
    SalePlan,
    SaleReads,
    SaleRefused,
    VoidPlan,
    limit_items,
    plan_sale,
    plan_void,
)
from hub.domain.state_payloads import sale_key
from hub.domain.tax import TaxRule, TaxTable
from hub.domain.tender import Settlement, Tender, settle

NOW = datetime(2026, 3, 14, 18, 0, tzinfo=UTC)
TODAY = date(2026, 3, 14)
MI = load_jurisdiction("MI")  # adult: 2.5 oz = 70,873 mg in total (MRTMA, MCL 333.27955)
MI_ADULT_MG = 70_873
TABLE = TaxTable(rules=(TaxRule(code="excise", name="Excise", rate_ppm=100_000, applies_to=("cannabis",)),))
STORE = StoreIdentity(name="Leaf", licence="AU-R-000123", address="1 Main St", timezone="America/Detroit")
BULK = Product(
    id="FLW-B",
    name="OG Kush (bulk)",
    brand="House",
    category="flower",
    sold_by="weight",
    price_cents=1000,
    limits=LimitAttributes(category="flower", net_weight_mg=1000),
)
GUMMIES = Product(
    id="EDI-1",
    name="Gummies",
    brand="Kiva",
    category="edible",
    sold_by="each",
    price_cents=2000,
    limits=LimitAttributes(category="edible", thc_mg=100),
)
BULK_PKG = Package(tag="1A40000000000000000000B1", product_id="FLW-B", quantity=100_000, received_at=NOW)
GUMMY_PKG = Package(tag="1A40000000000000000000G1", product_id="EDI-1", quantity=3, received_at=NOW)
FLOAT = {"B20": 5, "B10": 5, "B5": 10, "B1": 32, "C25": 40, "C10": 50, "C5": 40, "C1": 100}  # $250.00
ADULT = Buyer(customer_id="cust-1", customer_type="adult")


def drawer() -> DrawerSession:
    s = open_session("D1", "R1", FLOAT, counted_by="ana", witness="ben", at=NOW - timedelta(hours=1))
    assert isinstance(s, DrawerSession)
    return s


def weighed_cart(weight_mg: int) -> Cart:
    reading = WeightReading(weight_mg=weight_mg, stable=True, scale_id="s1", certificate="CoC 1")
    change = add_package(new_cart("c1", "R1", NOW, "cust-1"), BULK_PKG, BULK, TODAY, weight=reading)
    assert not isinstance(change, Refusal)
    return change.cart


def gummies_cart(units: int) -> Cart:
    change = add_package(new_cart("c2", "R1", NOW, "cust-1"), GUMMY_PKG, GUMMIES, TODAY, quantity=units)
    assert not isinstance(change, Refusal)
    return change.cart


def priced(cart: Cart, points: int = 0) -> PricedCart:
    return price_cart(cart, TABLE, local_now=NOW.replace(tzinfo=None), available_points=points)


def pay_cash(p: PricedCart, extra_cents: int = 0) -> Settlement:
    s = settle(p.total_cents, [Tender(kind="cash", amount_cents=p.total_cents + extra_cents)])
    assert isinstance(s, Settlement)
    return s


def reads(cart: Cart, **changes: object) -> SaleReads:
    limits = evaluate(MI, LimitCustomer(customer_class="adult", age=30), (), limit_items(cart), NOW)
    base = SaleReads(
        packages={BULK_PKG.tag: BULK_PKG, GUMMY_PKG.tag: GUMMY_PKG},
        products={BULK.id: BULK, GUMMIES.id: GUMMIES},
        held=None,
        limits=limits,
        drawer_id="D1",
        drawer=drawer(),
        last_receipt_number=41,
    )
    return msgspec.structs.replace(base, **changes)


def plan(
    cart: Cart, settlement: Settlement | None = None, p: PricedCart | None = None, **read_changes: object
):
    p = p or priced(cart)
    return plan_sale(
        cart=cart,
        buyer=ADULT,
        priced=p,
        settlement=settlement or pay_cash(p),
        reads=reads(cart, **read_changes),
        jurisdiction=MI,
        store=STORE,
        licence="AU-R-000123",
        time_zone="America/Detroit",
        register_id="R1",
        staff="ana",
        cashier="Ana",
        now=NOW,
        today=TODAY,
    )


def refusal(result: SalePlan | SaleRefused) -> SaleRefused:
    assert isinstance(result, SaleRefused), result
    return result


def test_a_cash_sale_decides_every_write():
    cart = weighed_cart(3_500)
    p = priced(cart)
    result = plan(cart, pay_cash(p, extra_cents=1_000))
    assert isinstance(result, SalePlan)
    assert result.receipt_number == 42  # sequential per store
    assert result.record.receipt.receipt_number == 42 and result.record.drawer_session_id == "D1"
    assert result.record.customer_id == "cust-1" and result.day == TODAY
    assert [(pk.tag, pk.quantity, pk.status) for pk in result.packages] == [(BULK_PKG.tag, 96_500, "active")]
    assert [i.quantity for i in result.ledger_items] == [1] and result.ledger_items[
        0
    ].attributes.net_weight_mg
    assert result.state_sale.external_receipt_number == sale_key("AU-R-000123", 42) == "AU-R-000123-42"
    assert result.state_sale.lines[0].quantity_mg == 3_500 and result.state_sale.customer_type == "Consumer"
    assert result.outbox_labels == (BULK_PKG.tag,)
    # cash in minus the change out, on the open drawer
    assert [(e.kind, e.amount_cents) for e in result.drawer_events] == [("cash_sale", p.total_cents)]
    assert result.drawer is not None and result.drawer.events[-1].receipt_number == 42
    assert result.loyalty_points is None
    assert result.audit_detail["receipt"] == 42 and result.audit_detail["total_cents"] == p.total_cents
    left = [(a.bucket, a.left) for a in result.receipt.allotment_left]
    assert left == [("concentrate", "15 g left"), ("cannabis (total)", "67.373 g left")]  # 70.873 g - 3.5 g


def test_the_allotment_at_its_limit_sells_and_one_milligram_over_is_refused():
    assert isinstance(plan(weighed_cart(MI_ADULT_MG)), SalePlan)
    r = refusal(plan(weighed_cart(MI_ADULT_MG + 1)))
    assert r.refusal.code == "over_limit" and r.refusal.message.startswith("Over the limit: ")
    assert not r.stock_changed


def test_cash_without_an_open_drawer_is_refused():
    r = refusal(plan(weighed_cart(1_000), drawer_id="", drawer=None))
    assert r.refusal.code == "no_drawer"


def test_a_card_sale_needs_no_drawer():
    cart = weighed_cart(1_000)
    p = priced(cart)
    s = settle(p.total_cents, [Tender(kind="debit", amount_cents=p.total_cents)])
    assert isinstance(s, Settlement)
    result = plan(cart, s, p, drawer_id="", drawer=None)
    assert isinstance(result, SalePlan) and result.drawer is None and result.drawer_events == ()


def test_change_the_drawer_cannot_give_is_refused():
    cart = weighed_cart(1_000)
    r = refusal(plan(cart, pay_cash(priced(cart), extra_cents=100_000)))
    assert r.refusal.code == "not_enough_change" and not r.stock_changed


def test_stock_sold_elsewhere_inside_the_commit_is_refused_as_a_conflict():
    cart = gummies_cart(3)
    assert isinstance(plan(cart), SalePlan)
    last_two = msgspec.structs.replace(GUMMY_PKG, quantity=2)
    r = refusal(plan(cart, packages={GUMMY_PKG.tag: last_two}))
    assert r.stock_changed
    gone = refusal(plan(cart, packages={GUMMY_PKG.tag: None}))
    assert gone.stock_changed


def test_the_last_units_finish_the_package():
    result = plan(gummies_cart(3))
    assert isinstance(result, SalePlan)
    assert [(pk.quantity, pk.status) for pk in result.packages] == [(0, "finished")]


def test_units_an_online_order_holds_are_refused():
    held = Refusal(code="reserved", message="Held for an online order.")
    r = refusal(plan(gummies_cart(1), held=held))
    assert r.refusal == held and r.stock_changed


def test_points_spent_elsewhere_since_pricing_are_refused():
    cart = gummies_cart(1)
    change = redeem_points(cart, 500, 500)
    assert not isinstance(change, Refusal)
    cart = change.cart
    p = price_cart(
        cart, TABLE, local_now=NOW.replace(tzinfo=None), loyalty=LoyaltyPolicy(), available_points=500
    )
    assert p.loyalty_points_redeemed == 500
    ok = plan(cart, pay_cash(p), p, loyalty_points=500)
    assert isinstance(ok, SalePlan) and ok.loyalty_points == 500 - 500 + p.loyalty_points_earned
    r = refusal(plan(cart, pay_cash(p), p, loyalty_points=499 - p.loyalty_points_earned))
    assert r.refusal.code == "not_enough_points"


def test_a_patient_sale_reports_the_registration():
    cart = weighed_cart(1_000)
    p = priced(cart)
    result = plan_sale(
        cart=cart,
        buyer=Buyer(customer_id="cust-2", customer_type="medical", registration_number="MMJ-1"),
        priced=p,
        settlement=pay_cash(p),
        reads=reads(cart),
        jurisdiction=MI,
        store=STORE,
        licence="AU-R-000123",
        time_zone="America/Detroit",
        register_id="R1",
        staff="ana",
        cashier="Ana",
        now=NOW,
        today=TODAY,
    )
    assert isinstance(result, SalePlan)
    assert result.state_sale.customer_type == "Patient" and result.state_sale.patient_license == "MMJ-1"


@pytest.mark.parametrize("last", [0, 41, 2**40])
def test_receipt_numbers_follow_the_last(last: int):
    result = plan(gummies_cart(1), last_receipt_number=last)
    assert isinstance(result, SalePlan) and result.receipt_number == last + 1


OVERRIDE = ManagerOverride(manager_id="mgr", reason="wrong item", reference="audit:7", at=NOW)


def void_of(sold: SalePlan, **changes: object):
    args: dict[str, object] = {
        "packages": {pk.tag: pk for pk in sold.packages},
        "given_back": (),
        "drawer_id": "D1",
        "drawer": sold.drawer,
        "override": OVERRIDE,
        "licence": "AU-R-000123",
        "register_id": "R1",
        "staff": "ana",
        "now": NOW + timedelta(minutes=5),
        "sold_on": TODAY,
        "today": TODAY,
    }
    args.update(changes)
    return plan_void(sold.record, **args)  # type: ignore[arg-type]


def test_a_void_gives_the_units_and_the_cash_back():
    cart = gummies_cart(3)
    p = priced(cart)
    sold = plan(cart, pay_cash(p, extra_cents=500))
    assert isinstance(sold, SalePlan) and sold.packages[0].status == "finished"
    v = void_of(sold)
    assert isinstance(v, VoidPlan)
    assert [(pk.quantity, pk.status) for pk in v.packages] == [(3, "active")]  # finished is active again
    assert v.record.voided and v.void.refund_tenders == (Tender(kind="cash", amount_cents=p.total_cents),)
    assert [(e.kind, e.amount_cents) for e in v.drawer_events] == [("cash_refund", p.total_cents)]
    assert v.cash_back_cents == p.total_cents and v.audit_detail["refund_cents"] == p.total_cents
    assert v.outbox_key == "void-AU-R-000123-42" and v.state_void.package_labels == (GUMMY_PKG.tag,)


def test_a_void_the_next_day_is_refused():
    sold = plan(gummies_cart(1))
    assert isinstance(sold, SalePlan)
    r = refusal(void_of(sold, today=TODAY + timedelta(days=1)))
    assert not r.stock_changed and r.refusal.code


def test_a_card_void_needs_no_drawer():
    cart = gummies_cart(1)
    p = priced(cart)
    s = settle(p.total_cents, [Tender(kind="debit", amount_cents=p.total_cents)])
    assert isinstance(s, Settlement)
    sold = plan(cart, s, p, drawer_id="", drawer=None)
    assert isinstance(sold, SalePlan)
    back = (Tender(kind="debit", amount_cents=p.total_cents, reference="R1"),)
    v = void_of(sold, drawer_id="", drawer=None, given_back=back)
    assert isinstance(v, VoidPlan) and v.drawer is None and v.void.refund_tenders == back
