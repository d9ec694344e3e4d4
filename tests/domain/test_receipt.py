from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from hub.domain.cart import (
    Change,
    ManagerOverride,
    ManualWeight,
    WeightReading,
    add_line_discount,
    add_package,
    new_cart,
)
from hub.domain.catalog import Package, Product, Refusal
from hub.domain.discounts import Discount, DiscountPolicy
from hub.domain.items import LimitAttributes
from hub.domain.pricing import price_cart
from hub.domain.receipt import (
    AllotmentLeft,
    Receipt,
    StoreIdentity,
    build_receipt,
    render_receipt_html,
    render_receipt_text,
    return_lines,
    sale_overrides,
)
from hub.domain.tax import TaxRule, TaxTable
from hub.domain.tender import Tender, settle

TODAY = date(2026, 3, 14)
SOLD_AT = datetime(2026, 3, 14, 22, 5, 9, tzinfo=UTC)  # 18:05:09 in Detroit (EDT)
TABLE = TaxTable(
    rules=(
        TaxRule(code="excise", name="Cannabis excise", rate_ppm=100_000, applies_to=("cannabis",)),
        TaxRule(code="state", name="Sales tax", rate_ppm=60_000, applies_to=("cannabis",)),
    )
)
STORE = StoreIdentity(
    name="Green <Leaf> & Co", licence="AU-R-000123", address="1 Main St", timezone="America/Detroit"
)
GUMMIES = Product(
    id="EDI-1",
    name="Gummies <script>alert(1)</script>",
    brand="Kiva",
    category="edible",
    sold_by="each",
    price_cents=2000,
    limits=LimitAttributes(category="edible", thc_mg=100),
)
BULK = Product(
    id="FLW-B",
    name="OG Kush (bulk)",
    brand="House",
    category="flower",
    sold_by="weight",
    price_cents=1000,
    limits=LimitAttributes(category="flower", net_weight_mg=1000),
)


def make_sale():
    c = new_cart("c1", "reg-1", SOLD_AT)
    g = Package(
        tag="1A4000000000000000000001",
        product_id="EDI-1",
        quantity=10,
        received_at=SOLD_AT - timedelta(days=3),
    )
    b = Package(tag="1A4000000000000000000002", product_id="FLW-B", quantity=28_000, received_at=SOLD_AT)
    c = add_package(c, g, GUMMIES, TODAY, quantity=3).cart
    c = add_package(
        c,
        b,
        BULK,
        TODAY,
        weight=WeightReading(weight_mg=3_500, stable=True, scale_id="s1", certificate="CoC 1"),
    ).cart
    d = Discount(kind="percent", value=1000, reason="Veteran <10%>")
    ch = add_line_discount(c, 1, d, role="budtender", policy=DiscountPolicy())
    assert isinstance(ch, Change)
    c = ch.cart
    priced = price_cart(c, TABLE, local_now=SOLD_AT.replace(tzinfo=None))
    settlement = settle(priced.total_cents, [Tender(kind="cash", amount_cents=20_000)])
    receipt = build_receipt(
        store=STORE,
        receipt_number=1042,
        cart=c,
        priced=priced,
        settlement=settlement,
        cashier="Sam",
        sold_at=SOLD_AT,
        customer_type="adult",
        allotment_left=[AllotmentLeft(bucket="Flower", left="67.4 g of 70.9 g left")],
    )
    return c, priced, receipt


def test_receipt_figures_and_local_time():
    _, priced, r = make_sale()
    # 3 × 20.00 = 60.00 − 10 % = 54.00; 3.5 g × 10.00 = 35.00; net 89.00; excise 8.90; state 5.34
    assert r.subtotal_cents == 9500 and r.discount_cents == 600
    assert [(t.code, t.amount_cents) for t in r.taxes] == [("excise", 890), ("state", 534)]
    assert r.total_cents == 10_324 == priced.total_cents
    assert r.change_cents == 20_000 - 10_324
    assert r.sold_at_local == "2026-03-14T18:05:09"
    assert r.lines[0].package_tag == "1A4000000000000000000001"
    assert r.lines[1].weight_mg == 3_500 and r.lines[1].scale_id == "s1"
    assert r.lines[0].discounts[0].label == "Veteran <10%>" and r.lines[0].discounts[0].amount_cents == 600
    assert "rounded half up" in r.rounding_note


def test_receipt_round_trips_as_stored():
    _, _, r = make_sale()
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(r), type=Receipt) == r


def test_html_escapes_everything_and_lists_each_tax():
    _, _, r = make_sale()
    page = render_receipt_html(r)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Green &lt;Leaf&gt; &amp; Co" in page and "Veteran &lt;10%&gt;" in page
    assert "Cannabis excise (10%)" in page and "Sales tax (6%)" in page
    assert "$103.24" in page and "$96.76" in page  # total and change
    assert "1A4000000000000000000002" in page and "3.5 g @ $10.00/g" in page
    assert "AU-R-000123" in page and "67.4 g of 70.9 g left" in page
    assert "rounded half up" in page


def test_mismatched_settlement_is_a_bug():
    c, priced, _ = make_sale()
    with pytest.raises(ValueError):
        build_receipt(
            store=STORE,
            receipt_number=1,
            cart=c,
            priced=priced,
            settlement=settle(100, [Tender(kind="cash", amount_cents=100)]),
            cashier="x",
            sold_at=SOLD_AT,
            customer_type="adult",
        )


def test_partial_and_whole_returns_refund_what_was_charged():
    _, _, r = make_sale()
    whole = return_lines(r, {1: 3, 2: 1})
    assert sum(x.refund_cents for x in whole) == r.total_cents
    one = return_lines(r, {1: 1})[0]
    # line 1: pretax 5400, excise 540, state 324 -> one of three: 1800 + 180 + 108
    assert (one.pretax_cents, [t.amount_cents for t in one.taxes], one.refund_cents) == (
        1800,
        [180, 108],
        2088,
    )
    assert isinstance(return_lines(r, {1: 4}), Refusal)
    assert return_lines(r, {9: 1}).code == "line_not_found"
    assert return_lines(r, {}).code == "nothing_returned"


def test_overrides_collected_from_the_cart():
    c = new_cart("c1", "reg-1", SOLD_AT)
    b = Package(tag="1A4000000000000000000002", product_id="FLW-B", quantity=28_000)
    typed = ManualWeight(
        weight_mg=1000, override=ManagerOverride(manager_id="m1", reason="scale down", reference="a1")
    )
    c = add_package(c, b, BULK, TODAY, weight=typed).cart
    c = add_line_discount(
        c,
        1,
        Discount(kind="percent", value=5000, reason="damaged", override_ref="a2", approved_by="m2"),
        role="budtender",
        policy=DiscountPolicy(),
    ).cart
    notes = sale_overrides(c)
    assert [(n.kind, n.manager_id, n.reference) for n in notes] == [
        ("typed_weight", "m1", "a1"),
        ("discount", "m2", "a2"),
    ]


def test_text_receipt_fits_the_paper_and_has_no_control_characters():
    _, _, r = make_sale()
    r = msgspec.structs.replace(r, store=msgspec.structs.replace(r.store, name="Evil\x1b@\x1dV store"))
    text = render_receipt_text(r)
    assert all(len(line) <= 42 for line in text.splitlines())
    assert "\x1b" not in text and "\x1d" not in text
    assert "1A4000000000000000000002" in text and "$103.24" in text and "Change" in text
    assert "Cannabis excise (10%)" in text and "rounded half up" in text.replace("\n", " ")


def test_void_only_on_the_day_of_the_sale() -> None:
    import msgspec

    from hub.domain.receipt import SaleRecord, void_refusal

    _, _, receipt = make_sale()
    record = SaleRecord(receipt=receipt, customer_id="c-1")
    assert void_refusal(record, TODAY, TODAY) is None
    late = void_refusal(record, TODAY, TODAY + timedelta(days=1))
    assert late is not None and late.code == "not_same_day" and "return" in late.message
    again = void_refusal(msgspec.structs.replace(record, voided=True), TODAY, TODAY)
    assert again is not None and again.code == "already_voided"


def test_tax_label_names_the_rate_once() -> None:
    from hub.domain.receipt import tax_label
    from hub.domain.tax import TaxAmount

    def amount(name: str, ppm: int) -> TaxAmount:
        return TaxAmount(code="x", name=name, rate_ppm=ppm, amount_cents=1)

    assert tax_label(amount("Cannabis excise 15%", 150_000)) == "Cannabis excise 15%"  # was "15% (15%)"
    assert tax_label(amount("Sales tax", 87_500)) == "Sales tax (8.75%)"
