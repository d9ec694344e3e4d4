"""The Form 8300 worksheet a compliance officer files from a cash flag, and the flag's status.

IRS Form 8300 ("Report of Cash Payments Over $10,000 Received in a Trade or Business"): Part I the
individual the cash came from, Part II on whose behalf (if anyone), Part III the transaction, Part IV the
business that received it; filed within 15 days, a copy kept 5 years, the customer told by 31 January
(compliance-and-market.md §1). The store fills what it knows (dates, amounts, receipts, what was bought,
the business, the customer's date of birth and ID issuer, the name only where the customer consented to a
profile); everything else is marked for the officer, who collects it from the customer. The store never
holds the ID number or the TIN in clear, so those are always the officer's. Pure: HTML is built here,
escaped, with no I/O.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from hub.domain.cash_compliance import CashFlag, FlagReview

FlagStatus = Literal["open", "filed", "dismissed"]
OFFICER = "for the compliance officer"


class WorksheetLine(msgspec.Struct, frozen=True, kw_only=True):
    line: str  # the form's line number
    label: str
    value: str = ""  # empty: the officer fills it
    source: str = ""  # where the store's value came from


class WorksheetPart(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    lines: list[WorksheetLine]


class Worksheet(msgspec.Struct, frozen=True, kw_only=True):
    flag_id: str
    status: FlagStatus
    status_reason: str
    due_by: date  # 15 days after the cash that crossed the threshold
    parts: list[WorksheetPart]
    for_officer: list[str]  # line numbers the officer must fill


class CashSale(msgspec.Struct, frozen=True, kw_only=True):
    receipt_number: int
    at: datetime
    cash_cents: int
    items: list[str]


class StoreFacts(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    licence: str
    address: str
    zone: str


class CustomerFacts(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    family_name: str = ""
    given_name: str = ""
    birth_date: date | None = None
    id_issuer: str = ""


def status_of(reviews: Sequence[FlagReview]) -> tuple[FlagStatus, str]:
    """Open until a manager records it filed, or dismisses it with a reason (``no_action``)."""
    if not reviews:
        return "open", ""
    last = max(reviews, key=lambda r: r.at)
    if last.decision == "filed_8300":
        return "filed", last.note
    if last.decision == "no_action":
        return "dismissed", last.note
    return "open", last.note


def _money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def worksheet(
    flag: CashFlag,
    reviews: Sequence[FlagReview],
    *,
    sales: Sequence[CashSale],
    store: StoreFacts,
    customer: CustomerFacts,
) -> Worksheet:
    zone = ZoneInfo(store.zone)
    status, reason = status_of(reviews)
    ordered = sorted(sales, key=lambda s: s.at)
    total = sum(s.cash_cents for s in ordered)
    # the day the cash crossed $10,000 starts the 15 days (the last sale of the window when unknown)
    running, crossed = 0, ordered[-1].at if ordered else flag.window_end
    for s in ordered:
        running += s.cash_cents
        if running > flag.threshold_cents:
            crossed = s.at
            break
    due = crossed.astimezone(zone).date() + timedelta(days=15)

    def line(no: str, label: str, value: str = "", source: str = "") -> WorksheetLine:
        return WorksheetLine(line=no, label=label, value=value, source=source)

    items = sorted({i for s in ordered for i in s.items})
    part1 = WorksheetPart(
        title="Part I — Identity of individual from whom the cash was received",
        lines=[
            line(
                "2",
                "Last name",
                customer.family_name,
                "customer profile (consented)" if customer.family_name else "",
            ),
            line(
                "3",
                "First name",
                customer.given_name,
                "customer profile (consented)" if customer.given_name else "",
            ),
            line("4", "Middle initial"),
            line("5", "Taxpayer identification number (TIN)"),
            line("6", "Address (number, street, apt. or suite no.)"),
            line("7–10", "City, state, ZIP code, country"),
            line("11", "Occupation, profession, or business"),
            line(
                "12",
                "Date of birth",
                customer.birth_date.isoformat() if customer.birth_date else "",
                "ID scanned at check-in" if customer.birth_date else "",
            ),
            line(
                "13a", "ID document", "Driver's licence / state ID" if customer.id_issuer else "", "check-in"
            ),
            line(
                "13b", "Issued by", customer.id_issuer, "ID scanned at check-in" if customer.id_issuer else ""
            ),
            line("13c", "ID number (the store keeps only a keyed hash)"),
        ],
    )
    part2 = WorksheetPart(
        title="Part II — Person on whose behalf this transaction was conducted",
        lines=[line("15–27", "Only if the customer acted for someone else: their name, TIN, address, ID")],
    )
    part3 = WorksheetPart(
        title="Part III — Description of transaction and method of payment",
        lines=[
            line("28", "Date cash received", crossed.astimezone(zone).date().isoformat(), "sales"),
            line("29", "Total cash received", _money(total), f"{len(ordered)} cash sale(s)"),
            line("30", "Received in more than one payment", "yes" if len(ordered) > 1 else "no", "sales"),
            line("31", "Total price if different from item 29", _money(total), "receipts"),
            line("32a", "U.S. currency (amount in $100 bills or higher)", "", ""),
            line("33", "Type of transaction", "a. Personal property purchased", "store"),
            line(
                "34",
                "Specific description of property or service",
                "Retail cannabis products: " + ", ".join(items[:12]) + (" …" if len(items) > 12 else ""),
                "receipts " + ", ".join(str(s.receipt_number) for s in ordered),
            ),
        ],
    )
    part4 = WorksheetPart(
        title="Part IV — Business that received cash",
        lines=[
            line("35", "Name of business that received cash", store.name, "store.toml"),
            line("36", "Employer identification number (EIN)"),
            line("37–41", "Address", store.address, "store.toml" if store.address else ""),
            line(
                "42",
                "Nature of your business",
                f"Licensed cannabis retailer (licence {store.licence})",
                "store.toml",
            ),
            line("—", "Signature of authorized official, title, date, contact telephone"),
        ],
    )
    parts = [part1, part2, part3, part4]
    officer = [ln.line for p in parts for ln in p.lines if not ln.value]
    return Worksheet(
        flag_id=flag.flag_id,
        status=status,
        status_reason=reason,
        due_by=due,
        parts=parts,
        for_officer=officer,
    )


def render_html(w: Worksheet, flag: CashFlag) -> str:
    e = html.escape
    rows = []
    for p in w.parts:
        rows.append(f"<h2>{e(p.title)}</h2><table><tbody>")
        for ln in p.lines:
            if ln.value:
                cell = f'<td class="store">{e(ln.value)}</td><td class="src">{e(ln.source)}</td>'
            else:
                cell = f'<td class="officer" colspan="2">— {OFFICER} —</td>'
            rows.append(f"<tr><th>{e(ln.line)}</th><td>{e(ln.label)}</td>{cell}</tr>")
        rows.append("</tbody></table>")
    status = e(w.status) + (f": {e(w.status_reason)}" if w.status_reason else "")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Form 8300 worksheet {e(w.flag_id)}</title>"
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #999;padding:4px 6px;text-align:left}.officer{background:#fff3c4}"
        ".src{color:#666;font-size:12px}@media print{.noprint{display:none}}</style></head><body>"
        "<h1>Form 8300 worksheet</h1>"
        f"<p>Flag <code>{e(w.flag_id)}</code>: {e(flag.sentence)}</p>"
        f'<p id="status" data-status="{e(w.status)}">Status: {status}</p>'
        f'<p>File with the IRS by <strong id="due">{w.due_by.isoformat()}</strong> (15 days); keep a copy 5 years; '
        "give the customer a written statement by 31 January next year.</p>"
        "<p>Yellow lines are for the compliance officer: the store does not hold them.</p>"
        + "".join(rows)
        + '<p class="noprint"><button onclick="print()">Print</button></p></body></html>'
    )
