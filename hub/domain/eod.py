"""End-of-day (Z) report: the day's sales, voids, returns and drawers, per register and for the store.

The business day is the store-local calendar date (DESIGN: the store's zone for "per day" windows). A voided
sale is listed as a void and left out of every sales figure. The report ties out: the sum of the sales
totals equals the sum of the tenders minus the change, and it says so in a sentence, in every format.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

import msgspec

from hub.domain.drawer import CloseSummary, DrawerSession, close_summary
from hub.domain.receipt import ReturnRecord, SaleRecord, VoidRecord
from hub.domain.tax import TaxAmount
from hub.domain.tender import Settlement, cents

_DONE = ("reported", "not_required")


class CategoryTotal(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    lines: int
    units: int
    weight_mg: int
    net_cents: int  # after discounts, shelf-price basis


class HourTotal(msgspec.Struct, frozen=True, kw_only=True):
    hour: int  # store-local hour, 0–23
    sales: int
    total_cents: int


class OverrideLine(msgspec.Struct, frozen=True, kw_only=True):
    receipt_number: int
    kind: str
    manager_id: str
    reason: str
    reference: str = ""


class DrawerLine(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    register_id: str
    status: str
    summary: CloseSummary | None  # None while the drawer is still open (blind count not in)


class TieOut(msgspec.Struct, frozen=True, kw_only=True):
    sales_total_cents: int
    tendered_cents: int
    change_cents: int
    difference_cents: int  # sales − (tendered − change); 0 when it ties out
    ok: bool
    sentence: str


class EodReport(msgspec.Struct, frozen=True, kw_only=True):
    business_date: date
    timezone: str
    scope: str  # "store" or a register id
    generated_at: datetime
    sales_count: int
    gross_cents: int  # Σ line amounts before any discount
    discounts_cents: int  # promotions + manual discounts + loyalty
    net_cents: int  # gross − discounts
    pretax_cents: int
    taxes: tuple[TaxAmount, ...]
    tax_cents: int
    total_cents: int  # what customers paid for the day's sales
    tenders: dict[str, int]  # applied per tender kind (change taken off cash)
    tendered_cents: int
    change_cents: int
    voids_count: int
    voids_cents: int
    returns_count: int
    returns_cents: int
    returns_tax_cents: int
    net_after_returns_cents: int
    by_category: tuple[CategoryTotal, ...]
    by_hour: tuple[HourTotal, ...]
    overrides: tuple[OverrideLine, ...]
    drawers: tuple[DrawerLine, ...]
    drawer_variance_cents: int  # Σ variances of counted drawers (negative = short)
    drawers_open: int
    drawers_awaiting_sign_off: int
    all_reported: bool  # every sale, void and return of the day reached the state system
    unreported: tuple[str, ...]  # "sale 1042", "void 1040", "return 17"
    tie_out: TieOut
    cash_from_sales_cents: int = 0  # cash tendered − change (what sales put in drawers)
    drawer_cash_sales_cents: int = 0  # Σ cash_sale events of the day's drawers
    refunds_by_tender: dict[str, int] = msgspec.field(default_factory=dict)
    # cashless ATM: what the terminal withdrew, the change paid back from drawers, the processor's fees
    # (fees are not sales: the customer's bank pays them to the processor)
    atm_withdrawn_cents: int = 0
    atm_change_cents: int = 0
    atm_fees_cents: int = 0


class DayReports(msgspec.Struct, frozen=True, kw_only=True):
    store: EodReport
    registers: tuple[EodReport, ...]


def _local_date(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def build_eod_report(
    business_date: date,
    timezone: str,
    *,
    sales: Iterable[SaleRecord],
    voids: Iterable[VoidRecord] = (),
    returns: Iterable[ReturnRecord] = (),
    drawers: Iterable[DrawerSession] = (),
    generated_at: datetime,
    register_id: str | None = None,
) -> EodReport:
    """The Z report for ``business_date`` (store-local) for the store, or one register. Records of other
    days are ignored, so the caller may pass a superset."""
    tz = ZoneInfo(timezone)

    def mine(reg: str) -> bool:
        return register_id is None or reg == register_id

    day_voids = [v for v in voids if mine(v.register_id) and _local_date(v.voided_at, tz) == business_date]
    voided_numbers = {v.receipt_number for v in day_voids}
    day_sales_all = [
        s
        for s in sales
        if mine(s.receipt.register_id) and _local_date(s.receipt.sold_at, tz) == business_date
    ]
    voided_sales = [s for s in day_sales_all if s.voided or s.receipt_number in voided_numbers]
    day_sales = [s for s in day_sales_all if not (s.voided or s.receipt_number in voided_numbers)]
    day_returns = [
        r for r in returns if mine(r.register_id) and _local_date(r.returned_at, tz) == business_date
    ]
    day_drawers = [
        d for d in drawers if mine(d.register_id) and _local_date(d.opening.at, tz) == business_date
    ]

    tax_totals: dict[str, TaxAmount] = {}
    tenders: dict[str, int] = {}
    categories: dict[str, list[int]] = {}
    hours: dict[int, list[int]] = {}
    overrides: list[OverrideLine] = []
    tendered = change = cash_from_sales = 0
    atm_withdrawn = atm_change = atm_fees = 0
    for sale in day_sales:
        r = sale.receipt
        atm = [t for t in r.tenders if t.kind == "cashless_atm"]
        atm_withdrawn += sum(t.amount_cents for t in atm)
        atm_fees += sum(t.fee_cents for t in atm)
        if atm:  # change comes off cash first (Settlement.by_kind); the rest was paid for the withdrawal
            cash_in = sum(t.amount_cents for t in r.tenders if t.kind == "cash")
            atm_change += max(r.change_cents - cash_in, 0)
        for t in r.taxes:
            prev = tax_totals.get(t.code)
            amount = t.amount_cents + (prev.amount_cents if prev else 0)
            tax_totals[t.code] = msgspec.structs.replace(t, amount_cents=amount)
        settlement = Settlement(
            total_cents=r.total_cents,
            tenders=r.tenders,
            tendered_cents=r.tendered_cents,
            change_cents=r.change_cents,
        )
        for kind, amount in settlement.by_kind().items():
            tenders[kind] = tenders.get(kind, 0) + amount
        tendered += r.tendered_cents
        change += r.change_cents
        cash_from_sales += settlement.drawer_delta_cents
        for line in r.lines:
            c = categories.setdefault(line.category, [0, 0, 0, 0])
            c[0] += 1
            c[1] += line.quantity if line.sold_by == "each" else 0
            c[2] += line.weight_mg
            c[3] += line.price_cents
        h = hours.setdefault(datetime.fromisoformat(r.sold_at_local).hour, [0, 0])
        h[0] += 1
        h[1] += r.total_cents
        for o in sale.overrides:
            overrides.append(
                OverrideLine(
                    receipt_number=r.receipt_number,
                    kind=o.kind,
                    manager_id=o.manager_id,
                    reason=o.reason,
                    reference=o.reference,
                )
            )
    for v in day_voids:
        overrides.append(
            OverrideLine(
                receipt_number=v.receipt_number, kind="void", manager_id=v.manager_id, reason=v.reason
            )
        )
    refunds_by_tender: dict[str, int] = {}
    for ret in day_returns:
        overrides.append(
            OverrideLine(
                receipt_number=ret.original_receipt_number,
                kind="return",
                manager_id=ret.manager_id,
                reason=ret.reason,
            )
        )
        for tender in ret.refund_tenders:
            refunds_by_tender[tender.kind] = refunds_by_tender.get(tender.kind, 0) + tender.amount_cents

    drawer_lines: list[DrawerLine] = []
    variance = 0
    for d in sorted(day_drawers, key=lambda d: (d.register_id, d.opening.at)):
        summary = close_summary(d)
        if isinstance(summary, CloseSummary):
            variance += summary.variance_cents
            drawer_lines.append(
                DrawerLine(
                    session_id=d.session_id, register_id=d.register_id, status=d.status, summary=summary
                )
            )
        else:
            drawer_lines.append(
                DrawerLine(session_id=d.session_id, register_id=d.register_id, status=d.status, summary=None)
            )
    drawer_cash_sales = sum(d.cash_sales_cents for d in day_drawers)
    drawer_cash_sales -= sum(e.amount_cents for d in day_drawers for e in d.events if e.kind == "atm_change")

    unreported = [f"sale {s.receipt_number}" for s in day_sales_all if s.state_status not in _DONE]
    unreported += [f"void {v.receipt_number}" for v in day_voids if v.state_status not in _DONE]
    unreported += [f"return {r.return_number}" for r in day_returns if r.state_status not in _DONE]

    gross = sum(s.receipt.subtotal_cents for s in day_sales)
    discounts = sum(s.receipt.discount_cents for s in day_sales)
    total = sum(s.receipt.total_cents for s in day_sales)
    returns_cents = sum(r.refund_cents for r in day_returns)
    difference = total - (tendered - change)
    if difference == 0:
        sentence = f"Ties out: sales {cents(total)} = tenders {cents(tendered)} − change {cents(change)}."
    else:
        sentence = (
            f"Does NOT tie out: sales {cents(total)} but tenders {cents(tendered)} − change {cents(change)} "
            f"= {cents(tendered - change)} (difference {cents(difference)})."
        )
    return EodReport(
        business_date=business_date,
        timezone=timezone,
        scope=register_id or "store",
        generated_at=generated_at,
        sales_count=len(day_sales),
        gross_cents=gross,
        discounts_cents=discounts,
        net_cents=gross - discounts,
        pretax_cents=sum(s.receipt.pretax_cents for s in day_sales),
        taxes=tuple(tax_totals.values()),
        tax_cents=sum(t.amount_cents for t in tax_totals.values()),
        total_cents=total,
        tenders=dict(sorted(tenders.items())),
        tendered_cents=tendered,
        change_cents=change,
        voids_count=len(voided_sales),
        voids_cents=sum(s.receipt.total_cents for s in voided_sales),
        returns_count=len(day_returns),
        returns_cents=returns_cents,
        returns_tax_cents=sum(t.amount_cents for r in day_returns for ln in r.lines for t in ln.taxes),
        net_after_returns_cents=total - returns_cents,
        by_category=tuple(
            CategoryTotal(category=k, lines=v[0], units=v[1], weight_mg=v[2], net_cents=v[3])
            for k, v in sorted(categories.items())
        ),
        by_hour=tuple(HourTotal(hour=k, sales=v[0], total_cents=v[1]) for k, v in sorted(hours.items())),
        overrides=tuple(overrides),
        drawers=tuple(drawer_lines),
        drawer_variance_cents=variance,
        drawers_open=sum(1 for d in day_drawers if d.status == "open"),
        drawers_awaiting_sign_off=sum(1 for d in day_drawers if d.status == "counted"),
        all_reported=not unreported,
        unreported=tuple(unreported),
        tie_out=TieOut(
            sales_total_cents=total,
            tendered_cents=tendered,
            change_cents=change,
            difference_cents=difference,
            ok=difference == 0,
            sentence=sentence,
        ),
        cash_from_sales_cents=cash_from_sales,
        drawer_cash_sales_cents=drawer_cash_sales,
        refunds_by_tender=dict(sorted(refunds_by_tender.items())),
        atm_withdrawn_cents=atm_withdrawn,
        atm_change_cents=atm_change,
        atm_fees_cents=atm_fees,
    )


def build_day_reports(
    business_date: date,
    timezone: str,
    *,
    sales: Sequence[SaleRecord],
    voids: Sequence[VoidRecord] = (),
    returns: Sequence[ReturnRecord] = (),
    drawers: Sequence[DrawerSession] = (),
    generated_at: datetime,
) -> DayReports:
    """The store's report and one per register that had any activity that day."""
    kw = dict(sales=sales, voids=voids, returns=returns, drawers=drawers, generated_at=generated_at)
    registers = sorted(
        {s.receipt.register_id for s in sales}
        | {v.register_id for v in voids}
        | {r.register_id for r in returns}
        | {d.register_id for d in drawers}
    )
    per_register = [build_eod_report(business_date, timezone, register_id=reg, **kw) for reg in registers]  # type: ignore[arg-type]
    store = build_eod_report(business_date, timezone, **kw)  # type: ignore[arg-type]
    active = tuple(r for r in per_register if r.sales_count or r.voids_count or r.returns_count or r.drawers)
    return DayReports(store=store, registers=active)


# ------------------------------------------------------------------------------------------ renderers


def render_json(report: EodReport | DayReports) -> bytes:
    """Machine-readable: every amount in integer cents, dates ISO 8601."""
    return msgspec.json.encode(report)


def _money(c: int) -> str:
    # Spreadsheet-friendly decimal dollars ("-5.00"), exact: no float involved.
    sign = "-" if c < 0 else ""
    return f"{sign}{abs(c) // 100}.{abs(c) % 100:02d}"


def render_csv(report: EodReport) -> str:
    """One row per figure: section, item, value, unit. Money in dollars with two decimals."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "item", "value", "unit"])

    def money(section: str, item: str, c: int) -> None:
        w.writerow([section, item, _money(c), "USD"])

    w.writerow(["report", "business_date", report.business_date.isoformat(), ""])
    w.writerow(["report", "scope", report.scope, ""])
    w.writerow(["report", "timezone", report.timezone, ""])
    w.writerow(["sales", "count", report.sales_count, "sales"])
    money("sales", "gross", report.gross_cents)
    money("sales", "discounts", report.discounts_cents)
    money("sales", "net", report.net_cents)
    money("sales", "pre_tax", report.pretax_cents)
    for t in report.taxes:
        money("tax", t.name, t.amount_cents)
    money("tax", "total", report.tax_cents)
    money("sales", "total", report.total_cents)
    for kind, amount in report.tenders.items():
        money("tenders", kind, amount)
    money("tenders", "tendered", report.tendered_cents)
    money("tenders", "change", report.change_cents)
    w.writerow(["voids", "count", report.voids_count, "sales"])
    money("voids", "total", report.voids_cents)
    w.writerow(["returns", "count", report.returns_count, "returns"])
    money("returns", "refunded", report.returns_cents)
    money("sales", "net_after_returns", report.net_after_returns_cents)
    for c in report.by_category:
        money("category", c.category, c.net_cents)
    for h in report.by_hour:
        money("hour", f"{h.hour:02d}:00", h.total_cents)
    for o in report.overrides:
        w.writerow(["override", f"{o.kind} #{o.receipt_number}", f"{o.manager_id}: {o.reason}", ""])
    for d in report.drawers:
        if d.summary is None:
            w.writerow(["drawer", d.session_id, "open (not counted)", ""])
        else:
            money("drawer_variance", d.session_id, d.summary.variance_cents)
    money("drawers", "variance_total", report.drawer_variance_cents)
    w.writerow(["state", "all_reported", "yes" if report.all_reported else "no", ""])
    for u in report.unreported:
        w.writerow(["state", "unreported", u, ""])
    w.writerow(["tie_out", "ok", "yes" if report.tie_out.ok else "no", ""])
    money("tie_out", "difference", report.tie_out.difference_cents)
    w.writerow(["tie_out", "sentence", report.tie_out.sentence, ""])
    return out.getvalue()


def _bars_svg(title: str, items: Sequence[tuple[str, int]]) -> str:
    """A horizontal bar chart as inline SVG (no script, no CDN: prints and works offline)."""
    e = html.escape
    if not items:
        return ""
    top = max(max(v for _, v in items), 1)
    row, label_w, bar_w = 22, 90, 300
    parts = [
        f'<svg role="img" aria-label="{e(title)}" width="{label_w + bar_w + 110}" height="{row * len(items) + 4}">'
    ]
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        w = max(round(bar_w * max(value, 0) / top), 0)
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="13">{e(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{row - 6}" fill="#2e7d32"></rect>'
            f'<text x="{label_w + w + 6}" y="{y + 15}" font-size="13">{e(cents(value))}</text>'
        )
    parts.append("</svg>")
    return f"<figure><figcaption>{e(title)}</figcaption>{''.join(parts)}</figure>"


def render_html(report: EodReport, store_name: str = "") -> str:
    """A printable page: figures, the tie-out sentence, drawers, and charts by hour and by tender."""
    e = html.escape

    def rows(items: Iterable[tuple[str, str]]) -> str:
        return "".join(f"<tr><th scope=row>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in items)

    figures = [
        ("Sales", str(report.sales_count)),
        ("Gross", cents(report.gross_cents)),
        ("Discounts", cents(-report.discounts_cents)),
        ("Net", cents(report.net_cents)),
        *((t.name, cents(t.amount_cents)) for t in report.taxes),
        ("Total collected", cents(report.total_cents)),
        ("Voids", f"{report.voids_count} ({cents(report.voids_cents)})"),
        ("Returns", f"{report.returns_count} ({cents(-report.returns_cents)})"),
        ("Net after returns", cents(report.net_after_returns_cents)),
        ("Drawer variance", cents(report.drawer_variance_cents)),
    ]
    drawers = []
    for d in report.drawers:
        if d.summary is None:
            drawers.append((f"{d.register_id} · {d.session_id}", "open, not counted"))
        else:
            s = d.summary
            note = f" — {s.signed_off_by}: {s.note}" if s.signed_off_by else ""
            drawers.append(
                (
                    f"{d.register_id} · {d.session_id}",
                    f"expected {cents(s.expected_cents)}, counted {cents(s.counted_cents)}, "
                    f"variance {cents(s.variance_cents)}{note}",
                )
            )
    overrides = [(f"{o.kind} #{o.receipt_number}", f"{o.manager_id}: {o.reason}") for o in report.overrides]
    state = (
        "Every sale reached the state system."
        if report.all_reported
        else ("Not yet at the state system: " + ", ".join(report.unreported))
    )
    tie_class = "ok" if report.tie_out.ok else "bad"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Z report {report.business_date.isoformat()} {e(report.scope)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:50rem;margin:auto}th{text-align:left;"
        "padding-right:1rem;font-weight:normal}.ok{color:#1b5e20}.bad{color:#b71c1c;font-weight:bold}"
        "@media print{figure{break-inside:avoid}}</style></head><body>"
        f"<h1>{e(store_name)} Z report — {report.business_date.isoformat()} — {e(report.scope)}</h1>"
        f'<p class="{tie_class}">{e(report.tie_out.sentence)}</p>'
        f'<p class="{"ok" if report.all_reported else "bad"}">{e(state)}</p>'
        f"<table>{rows(figures)}</table>"
        + _bars_svg("Sales by hour", [(f"{h.hour:02d}:00", h.total_cents) for h in report.by_hour])
        + _bars_svg("Tenders", list(report.tenders.items()))
        + _bars_svg("By category", [(c.category, c.net_cents) for c in report.by_category])
        + (f"<h2>Drawers</h2><table>{rows(drawers)}</table>" if drawers else "")
        + (f"<h2>Overrides</h2><table>{rows(overrides)}</table>" if overrides else "")
        + "</body></html>"
    )
