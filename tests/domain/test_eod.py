import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import msgspec

from hub.domain.cart import add_package, new_cart
from hub.domain.catalog import Package, Product
from hub.domain.drawer import DrawerEvent, hand_over, open_session, record, sign_off, submit_blind_count
from hub.domain.eod import build_day_reports, build_eod_report, render_csv, render_html, render_json
from hub.domain.items import LimitAttributes
from hub.domain.pricing import price_cart
from hub.domain.receipt import (
    OverrideNote,
    ReturnRecord,
    SaleRecord,
    StoreIdentity,
    VoidRecord,
    build_receipt,
    return_lines,
)
from hub.domain.tax import TaxRule, TaxTable
from hub.domain.tender import Tender, settle

TZ = "America/Detroit"
DAY = date(2026, 3, 14)
OPEN = datetime(2026, 3, 14, 13, 0, tzinfo=UTC)  # 09:00 local (EDT)
STORE = StoreIdentity(name="Demo", licence="AU-R-1", timezone=TZ)
TABLE = TaxTable(
    rules=(
        TaxRule(code="excise", name="Excise 10%", rate_ppm=100_000, applies_to=("cannabis",)),
        TaxRule(code="state", name="Sales 6%", rate_ppm=60_000, applies_to=("cannabis",)),
    )
)
PRODUCTS = {
    "EDI": Product(
        id="EDI",
        name="Gummies",
        brand="K",
        category="edible",
        sold_by="each",
        price_cents=2000,
        limits=LimitAttributes(category="edible"),
    ),
    "FLW": Product(
        id="FLW",
        name="Blue Dream 3.5g",
        brand="P",
        category="flower",
        sold_by="each",
        price_cents=3800,
        limits=LimitAttributes(category="flower"),
    ),
}
FLOAT = {"B20": 5, "B10": 5, "B5": 10, "B1": 50}  # $250.00


def sale(n, register, minutes, product, qty, tenders, state="reported"):
    p = PRODUCTS[product]
    pkg = Package(tag=f"1A4{n:021d}", product_id=p.id, quantity=100)
    cart = add_package(new_cart(f"c{n}", register, OPEN), pkg, p, DAY, quantity=qty).cart
    at = OPEN + timedelta(minutes=minutes)
    priced = price_cart(cart, TABLE, local_now=at)
    settlement = settle(
        priced.total_cents, [Tender(kind=k, amount_cents=a or priced.total_cents) for k, a in tenders]
    )
    receipt = build_receipt(
        store=STORE,
        receipt_number=n,
        cart=cart,
        priced=priced,
        settlement=settlement,
        cashier="ana",
        sold_at=at,
        customer_type="adult",
    )
    return SaleRecord(receipt=receipt, drawer_session_id=f"d-{register}", state_status=state)


def a_day():
    """Two registers, cash and debit sales, a drop, a paid-out, a void and a return; register 2 is $5 short."""
    sales = [
        sale(1, "reg-1", 30, "EDI", 2, [("cash", 5000)]),  # 46.40, change 3.60
        sale(2, "reg-1", 95, "FLW", 1, [("debit", 0)]),  # 44.08
        sale(3, "reg-2", 100, "FLW", 2, [("cash", 10_000)]),  # 88.16, change 11.84
        sale(4, "reg-2", 200, "EDI", 1, [("debit", 1000), ("cash", 2000)]),  # 23.20: 10 debit + 13.20 cash
        sale(5, "reg-1", 210, "EDI", 3, [("cash", 7000)]),  # 69.60 — voided
        sale(6, "reg-2", 400, "FLW", 1, [("cash", 5000)], state="pending"),  # 44.08, not yet at the state
    ]
    sales[0] = msgspec.structs.replace(
        sales[0], overrides=(OverrideNote(kind="limit", manager_id="mia", reason="medical", reference="a7"),)
    )
    void = VoidRecord(
        receipt_number=5,
        register_id="reg-1",
        voided_at=OPEN + timedelta(minutes=215),
        manager_id="mia",
        reason="wrong product",
        state_status="reported",
    )
    lines = return_lines(sales[2].receipt, {1: 1})
    ret = ReturnRecord(
        return_number=1,
        original_receipt_number=3,
        register_id="reg-2",
        returned_at=OPEN + timedelta(minutes=300),
        lines=lines,
        refund_cents=sum(ln.refund_cents for ln in lines),
        refund_tenders=(Tender(kind="cash", amount_cents=sum(ln.refund_cents for ln in lines)),),
        manager_id="mia",
        reason="sealed, unopened",
        state_status="reported",
    )
    at = OPEN + timedelta(minutes=1)

    def cash_sale(s):
        r = s.receipt
        return DrawerEvent(
            kind="cash_sale",
            amount_cents=sum(t.amount_cents for t in r.tenders if t.kind == "cash") - r.change_cents,
            at=r.sold_at,
            by="ana",
            receipt_number=r.receipt_number,
        )

    d1 = open_session("d-reg-1", "reg-1", FLOAT, counted_by="ana", witness="mia", at=at)
    for s in (sales[0], sales[4]):
        d1 = record(d1, cash_sale(s))
    d1 = record(
        d1,
        DrawerEvent(
            kind="cash_refund",
            amount_cents=6960,
            at=OPEN + timedelta(minutes=215),
            by="ana",
            reason="void #5",
        ),
    )
    d1 = record(
        d1,
        DrawerEvent(
            kind="drop",
            amount_cents=2000,
            at=at,
            by="ana",
            reason="midday",
            manager_id="mia",
            override_ref="a1",
            bag_number="S-1",
        ),
    )
    d2 = open_session("d-reg-2", "reg-2", FLOAT, counted_by="ben", witness="mia", at=at)
    for s in (sales[2], sales[3], sales[5]):
        d2 = record(d2, cash_sale(s))
    d2 = record(
        d2,
        DrawerEvent(
            kind="cash_refund",
            amount_cents=ret.refund_cents,
            at=ret.returned_at,
            by="ben",
            reason="return #1",
        ),
    )
    d2 = record(
        d2,
        DrawerEvent(
            kind="paid_out",
            amount_cents=1299,
            at=at,
            by="ben",
            reason="printer paper",
            manager_id="mia",
            override_ref="a2",
        ),
    )
    return sales, void, ret, d1, d2


def counted_exactly(session, short_cents=0):
    """Pieces that add up to the session's expected cash minus ``short_cents`` (pennies for the rest)."""
    amount = session.expected_cents - short_cents
    return {"B20": amount // 2000, "C1": amount % 2000}


def test_a_day_ties_out_and_shows_the_five_dollar_short_drawer():
    sales, void, ret, d1, d2 = a_day()
    end = OPEN + timedelta(hours=10)
    d1 = submit_blind_count(d1, counted_exactly(d1), counted_by="ana", at=end)
    d2 = submit_blind_count(d2, counted_exactly(d2, short_cents=500), counted_by="ben", at=end)
    assert d1.status == "closed" and d2.status == "counted"
    d2 = sign_off(d2, manager_id="mia", note="short $5, reviewed", at=end)
    day = build_day_reports(
        DAY, TZ, sales=sales, voids=[void], returns=[ret], drawers=[d1, d2], generated_at=end
    )
    store = day.store

    assert store.sales_count == 5 and store.voids_count == 1 and store.voids_cents == 6960
    assert store.total_cents == 4640 + 4408 + 8816 + 2320 + 4408
    assert store.tie_out.ok and store.tie_out.difference_cents == 0 and "Ties out" in store.tie_out.sentence
    assert sum(store.tenders.values()) == store.total_cents
    assert store.tenders == {"cash": 4640 + 8816 + 1320 + 4408, "debit": 4408 + 1000}
    assert store.gross_cents - store.discounts_cents == store.net_cents
    assert store.pretax_cents + store.tax_cents == store.total_cents
    assert [t.code for t in store.taxes] == ["excise", "state"]
    assert store.drawer_variance_cents == -500
    reg2 = next(r for r in day.registers if r.scope == "reg-2")
    assert reg2.drawer_variance_cents == -500 and reg2.drawers[0].summary.note == "short $5, reviewed"
    reg1 = next(r for r in day.registers if r.scope == "reg-1")
    assert reg1.drawer_variance_cents == 0 and reg1.voids_count == 1
    assert reg1.total_cents + reg2.total_cents == store.total_cents
    assert store.returns_count == 1 and store.returns_cents == 4408
    assert store.net_after_returns_cents == store.total_cents - 4408
    assert store.refunds_by_tender == {"cash": 4408}
    # cash the sales put in the drawers matches what the drawers recorded (the voided sale is out of the
    # sales, and its cash went back out as a refund)
    assert store.cash_from_sales_cents == store.drawer_cash_sales_cents - 6960
    assert not store.all_reported and store.unreported == ("sale 6",)
    assert {o.kind for o in store.overrides} == {"limit", "void", "return"}
    assert {c.category: c.units for c in store.by_category} == {"edible": 3, "flower": 4}
    assert [h.hour for h in store.by_hour] == [9, 10, 12, 15]


def test_open_drawers_and_pending_sign_off_are_counted():
    sales, void, ret, d1, d2 = a_day()
    d2 = submit_blind_count(d2, counted_exactly(d2, 500), counted_by="ben", at=OPEN + timedelta(hours=9))
    r = build_eod_report(DAY, TZ, sales=sales, drawers=[d1, d2], generated_at=OPEN)
    assert r.drawers_open == 1 and r.drawers_awaiting_sign_off == 1
    assert r.drawers[0].summary is None  # still open: no expected figure leaks into the report


def test_a_corrupted_record_does_not_tie_out():
    sales, *_ = a_day()
    bad = msgspec.structs.replace(sales[0].receipt, change_cents=sales[0].receipt.change_cents + 100)
    sales[0] = msgspec.structs.replace(sales[0], receipt=bad)
    r = build_eod_report(DAY, TZ, sales=sales, generated_at=OPEN)
    assert not r.tie_out.ok and r.tie_out.difference_cents == 100 and "NOT" in r.tie_out.sentence


def test_local_date_boundary():
    # 23:30 local on the 14th is 03:30 UTC on the 15th: it belongs to the 14th
    late = sale(9, "reg-1", 0, "EDI", 1, [("cash", 0)])
    late_at = datetime(2026, 3, 15, 3, 30, tzinfo=UTC)
    late = msgspec.structs.replace(
        late,
        receipt=msgspec.structs.replace(late.receipt, sold_at=late_at, sold_at_local="2026-03-14T23:30:00"),
    )
    assert build_eod_report(DAY, TZ, sales=[late], generated_at=OPEN).sales_count == 1
    assert build_eod_report(date(2026, 3, 15), TZ, sales=[late], generated_at=OPEN).sales_count == 0


def test_csv_and_json_renderers():
    sales, void, ret, d1, d2 = a_day()
    d2 = sign_off(
        submit_blind_count(d2, counted_exactly(d2, 500), counted_by="ben", at=OPEN),
        manager_id="mia",
        note="n",
        at=OPEN,
    )
    r = build_eod_report(
        DAY, TZ, sales=sales, voids=[void], returns=[ret], drawers=[d1, d2], generated_at=OPEN
    )
    rows = list(csv.reader(io.StringIO(render_csv(r))))
    assert rows[0] == ["section", "item", "value", "unit"]
    assert ["drawer_variance", "d-reg-2", "-5.00", "USD"] in rows
    assert ["tie_out", "ok", "yes", ""] in rows
    assert [
        "tax",
        "Excise 10%",
        f"{r.taxes[0].amount_cents // 100}.{r.taxes[0].amount_cents % 100:02d}",
        "USD",
    ] in rows
    data = json.loads(render_json(r))
    assert data["tie_out"]["ok"] is True and data["drawer_variance_cents"] == -500
    assert data["business_date"] == "2026-03-14"


def test_hand_over_sessions_appear_in_the_report():
    _, _, _, d1, _ = a_day()
    old, new = hand_over(
        d1,
        counted_exactly(d1),
        outgoing="ana",
        incoming="cal",
        new_session_id="d-reg-1b",
        at=OPEN + timedelta(hours=5),
    )
    r = build_eod_report(DAY, TZ, sales=[], drawers=[old, new], generated_at=OPEN)
    assert [d.session_id for d in r.drawers] == ["d-reg-1", "d-reg-1b"] and r.drawers_open == 1


def test_html_page_with_charts_escapes_and_shows_the_variance():
    sales, void, ret, d1, d2 = a_day()
    d2 = sign_off(
        submit_blind_count(d2, counted_exactly(d2, 500), counted_by="ben", at=OPEN),
        manager_id="mia",
        note="<b>short</b>",
        at=OPEN,
    )
    r = build_eod_report(
        DAY, TZ, sales=sales, voids=[void], returns=[ret], drawers=[d1, d2], generated_at=OPEN
    )
    page = render_html(r, store_name="Green & <Co>")
    assert (
        "Green &amp; &lt;Co&gt;" in page and "<b>short</b>" not in page and "&lt;b&gt;short&lt;/b&gt;" in page
    )
    assert page.count("<svg") == 3 and "Sales by hour" in page
    assert "variance -$5.00" in page and "Ties out" in page and "sale 6" in page
