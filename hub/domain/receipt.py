"""The receipt document, the records a sale leaves (sale, void, return), and the HTML rendering.

The receipt is built from the cart, its pricing and the settlement at commit time and stored with the sale,
so reprinting it years later shows exactly what was charged (CA keeps sales records 7 years, 4 CCR 15037).
Times: stored in UTC; printed in the store's local time (DESIGN: the store's zone for people and for Metrc
``SalesDateTime``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from hub.domain.cart import Cart, CartLine, ManagerOverride
from hub.domain.catalog import Refusal, format_grams
from hub.domain.pricing import PricedCart, PricedLine
from hub.domain.tax import TaxAmount, format_rate, round_half_up
from hub.domain.tender import Settlement, Tender, cents


class StoreIdentity(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    licence: str  # the state licence number printed on every receipt
    address: str = ""
    phone: str = ""
    timezone: str = "America/Detroit"
    store_id: str = ""


class ReceiptDiscount(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    amount_cents: int


class ReceiptLine(msgspec.Struct, frozen=True, kw_only=True):
    line_id: int
    product_id: str
    name: str
    brand: str
    category: str
    package_tag: str
    sold_by: Literal["each", "weight"]
    quantity: int
    weight_mg: int
    unit_price_cents: int
    base_cents: int
    discounts: tuple[ReceiptDiscount, ...]
    price_cents: int
    pretax_cents: int
    taxes: tuple[TaxAmount, ...]
    total_cents: int
    scale_id: str = ""
    weight_source: str = ""


class AllotmentLeft(msgspec.Struct, frozen=True, kw_only=True):
    """One purchase-limit bucket as the limits engine words it ("Flower", "21.5 g of 70.9 g left")."""

    bucket: str
    left: str


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    store: StoreIdentity
    receipt_number: int  # sequential per store
    register_id: str
    cashier: str  # display name or staff id, never a PIN
    sold_at: datetime  # UTC
    sold_at_local: str  # store-local "YYYY-MM-DDTHH:MM:SS", no offset (Metrc SalesDateTime form)
    customer_type: str
    lines: tuple[ReceiptLine, ...]
    subtotal_cents: int
    discount_cents: int  # promotions + discounts + loyalty
    pretax_cents: int
    taxes: tuple[TaxAmount, ...]
    tax_cents: int
    total_cents: int
    tenders: tuple[Tender, ...]
    tendered_cents: int
    change_cents: int
    prices_include_tax: bool
    rounding_note: str
    allotment_left: tuple[AllotmentLeft, ...] = ()
    loyalty_points_redeemed: int = 0
    loyalty_points_earned: int = 0
    loyalty_balance: int | None = None
    notes: tuple[str, ...] = ()


def local_time_text(at: datetime, timezone: str) -> str:
    return at.astimezone(ZoneInfo(timezone)).replace(tzinfo=None).isoformat(timespec="seconds")


def _line_discounts(line: CartLine, pl: PricedLine) -> tuple[ReceiptDiscount, ...]:
    out: list[ReceiptDiscount] = []
    if pl.promotion_cents:
        name = pl.promotion.name if pl.promotion else "Promotion"
        out.append(ReceiptDiscount(label=name, amount_cents=pl.promotion_cents))
    if pl.line_discount_cents:
        label = "; ".join(d.label or d.reason for d in line.discounts) or "Discount"
        out.append(ReceiptDiscount(label=label, amount_cents=pl.line_discount_cents))
    if pl.cart_discount_cents:
        out.append(ReceiptDiscount(label="Cart discount", amount_cents=pl.cart_discount_cents))
    if pl.loyalty_cents:
        out.append(ReceiptDiscount(label="Loyalty points", amount_cents=pl.loyalty_cents))
    return tuple(out)


def build_receipt(
    *,
    store: StoreIdentity,
    receipt_number: int,
    cart: Cart,
    priced: PricedCart,
    settlement: Settlement,
    cashier: str,
    sold_at: datetime,
    customer_type: str,
    allotment_left: Sequence[AllotmentLeft] = (),
    loyalty_balance: int | None = None,
    notes: Sequence[str] = (),
) -> Receipt:
    if settlement.total_cents != priced.total_cents:
        raise ValueError("the settlement is for a different total than the priced cart")
    lines = []
    for line in cart.lines:
        pl = priced.line(line.line_id)
        lines.append(
            ReceiptLine(
                line_id=line.line_id,
                product_id=line.product_id,
                name=line.product_name,
                brand=line.brand,
                category=line.category,
                package_tag=line.package_tag,
                sold_by=line.sold_by,
                quantity=line.quantity,
                weight_mg=line.weight_mg,
                unit_price_cents=line.unit_price_cents,
                base_cents=pl.base_cents,
                discounts=_line_discounts(line, pl),
                price_cents=pl.price_cents,
                pretax_cents=pl.pretax_cents,
                taxes=pl.taxes,
                total_cents=pl.total_cents,
                scale_id=line.scale_id,
                weight_source=line.weight_source,
            )
        )
    return Receipt(
        store=store,
        receipt_number=receipt_number,
        register_id=cart.register_id,
        cashier=cashier,
        sold_at=sold_at,
        sold_at_local=local_time_text(sold_at, store.timezone),
        customer_type=customer_type,
        lines=tuple(lines),
        subtotal_cents=priced.subtotal_cents,
        discount_cents=priced.total_discount_cents,
        pretax_cents=priced.pretax_cents,
        taxes=priced.taxes,
        tax_cents=priced.tax_cents,
        total_cents=priced.total_cents,
        tenders=settlement.tenders,
        tendered_cents=settlement.tendered_cents,
        change_cents=settlement.change_cents,
        prices_include_tax=priced.prices_include_tax,
        rounding_note=priced.rounding_note,
        allotment_left=tuple(allotment_left),
        loyalty_points_redeemed=priced.loyalty_points_redeemed,
        loyalty_points_earned=priced.loyalty_points_earned,
        loyalty_balance=loyalty_balance,
        notes=tuple(notes),
    )


# ------------------------------------------------------------------------------------ sale records

StateStatus = Literal["pending", "reported", "failed", "not_required"]


class OverrideNote(msgspec.Struct, frozen=True, kw_only=True):
    """A manager override that shaped the sale, for the audit trail and the Z report."""

    kind: str  # typed_weight, discount, limit, id_manual_entry, ...
    manager_id: str
    reason: str
    reference: str = ""


class SaleRecord(msgspec.Struct, frozen=True, kw_only=True):
    receipt: Receipt
    customer_id: str = ""
    drawer_session_id: str = ""
    overrides: tuple[OverrideNote, ...] = ()
    state_status: StateStatus = "pending"
    voided: bool = False

    @property
    def receipt_number(self) -> int:
        return self.receipt.receipt_number


class VoidRecord(msgspec.Struct, frozen=True, kw_only=True):
    receipt_number: int
    register_id: str
    voided_at: datetime  # UTC
    manager_id: str
    reason: str
    refund_tenders: tuple[Tender, ...] = ()  # money given back for the voided sale
    drawer_session_id: str = ""
    state_status: StateStatus = "pending"


class ReturnLine(msgspec.Struct, frozen=True, kw_only=True):
    line_id: int  # of the original receipt
    product_id: str
    name: str
    category: str
    package_tag: str  # the returned units go into quarantine on this package, never back on sale
    quantity: int
    weight_mg: int
    pretax_cents: int
    taxes: tuple[TaxAmount, ...]
    refund_cents: int


class ReturnRecord(msgspec.Struct, frozen=True, kw_only=True):
    return_number: int
    original_receipt_number: int
    register_id: str
    returned_at: datetime  # UTC
    lines: tuple[ReturnLine, ...]
    refund_cents: int
    refund_tenders: tuple[Tender, ...]
    manager_id: str
    reason: str
    drawer_session_id: str = ""
    customer_id: str = ""
    state_status: StateStatus = "pending"


def sale_overrides(cart: Cart, extra: Sequence[OverrideNote] = ()) -> tuple[OverrideNote, ...]:
    """Every override recorded on the cart (typed weights, discounts beyond a role), plus ``extra``
    (limit overrides, manual ID entry) from the register."""
    notes: list[OverrideNote] = []
    for line in cart.lines:
        if line.override is not None:
            notes.append(_note("typed_weight", line.override))
        for d in line.discounts:
            if d.override_ref:
                notes.append(
                    OverrideNote(
                        kind="discount", manager_id=d.approved_by, reason=d.reason, reference=d.override_ref
                    )
                )
    for d in cart.cart_discounts:
        if d.override_ref:
            notes.append(
                OverrideNote(
                    kind="discount", manager_id=d.approved_by, reason=d.reason, reference=d.override_ref
                )
            )
    return (*notes, *extra)


def _note(kind: str, o: ManagerOverride) -> OverrideNote:
    return OverrideNote(kind=kind, manager_id=o.manager_id, reason=o.reason, reference=o.reference)


def return_lines(receipt: Receipt, quantities: dict[int, int]) -> tuple[ReturnLine, ...] | Refusal:
    """The refund for returning ``quantities`` (line id -> units) of ``receipt``. A weighed line is
    returned whole (pass its quantity, 1). Part of a unit line refunds its share of the line's pre-tax
    amount and of each tax, rounded half up; the whole line refunds exactly what was charged."""
    by_id = {ln.line_id: ln for ln in receipt.lines}
    out: list[ReturnLine] = []
    for line_id, qty in sorted(quantities.items()):
        line = by_id.get(line_id)
        if line is None:
            return Refusal(
                code="line_not_found", message=f"Receipt {receipt.receipt_number} has no line {line_id}."
            )
        if qty < 1 or qty > line.quantity:
            return Refusal(
                code="bad_quantity", message=f"Line {line_id} sold {line.quantity}; cannot return {qty}."
            )
        share = Fraction(qty, line.quantity)
        taxes = tuple(
            msgspec.structs.replace(t, amount_cents=round_half_up(t.amount_cents * share)) for t in line.taxes
        )
        pretax = round_half_up(line.pretax_cents * share)
        out.append(
            ReturnLine(
                line_id=line_id,
                product_id=line.product_id,
                name=line.name,
                category=line.category,
                package_tag=line.package_tag,
                quantity=qty,
                weight_mg=line.weight_mg,
                pretax_cents=pretax,
                taxes=taxes,
                refund_cents=pretax + sum(t.amount_cents for t in taxes),
            )
        )
    if not out:
        return Refusal(code="nothing_returned", message="Choose at least one line to return.")
    return tuple(out)


# ------------------------------------------------------------------------------------------- HTML

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:auto}"
    "table{width:100%;border-collapse:collapse}td{padding:.1rem 0;vertical-align:top}"
    "td.n{text-align:right;white-space:nowrap}.tag{font-family:monospace;font-size:.8em;color:#444}"
    ".disc{color:#555;font-size:.9em;padding-left:1em}.tot td{font-weight:bold;border-top:1px solid #000}"
    "header,footer{text-align:center}.note{font-size:.8em;color:#444}"
)


def _qty_text(line: ReceiptLine) -> str:
    if line.sold_by == "weight":
        return f"{format_grams(line.weight_mg)} g @ {cents(line.unit_price_cents)}/g"
    return f"{line.quantity} @ {cents(line.unit_price_cents)}"


def tax_label(t: TaxAmount) -> str:
    """The tax's name with its rate, once: "Cannabis excise 15%", never "Cannabis excise 15% (15%)"."""
    rate = format_rate(t.rate_ppm)
    return t.name if rate in t.name else f"{t.name} ({rate})"


TENDER_LABELS = {
    "cash": "Cash",
    "debit": "Debit",
    "cashless_atm": "Cashless ATM withdrawal",
    "store_credit": "Store credit",
    "pay_by_bank": "Pay by bank",
}


def tender_rows(receipt: Receipt) -> list[tuple[str, int]]:
    """The payment lines of a receipt. A cashless-ATM withdrawal shows for what it is: the amount
    withdrawn, the processor's fee (charged to the customer's account, not part of the sale) and the change
    handed back in cash."""
    rows: list[tuple[str, int]] = []
    for t in receipt.tenders:
        label = TENDER_LABELS.get(t.kind, t.kind.replace("_", " ").title())
        rows.append((label + (f" ****{t.card_last4}" if t.card_last4 else ""), t.amount_cents))
        if t.kind == "cashless_atm" and t.fee_cents:
            rows.append(("ATM fee (not part of the sale)", t.fee_cents))
    atm = any(t.kind == "cashless_atm" for t in receipt.tenders)
    rows.append(("Change (cash)" if atm else "Change", receipt.change_cents))
    return rows


def render_receipt_html(receipt: Receipt) -> str:
    """A complete, self-contained HTML page. Every value from data is escaped."""
    e = html.escape
    s = receipt.store
    rows: list[str] = []
    for line in receipt.lines:
        rows.append(
            f'<tr><td>{e(line.name)}<br><span class="tag">{e(line.package_tag)}</span>'
            f'<br>{e(_qty_text(line))}</td><td class="n">{e(cents(line.base_cents))}</td></tr>'
        )
        for d in line.discounts:
            rows.append(
                f'<tr><td class="disc">{e(d.label)}</td><td class="n">-{e(cents(d.amount_cents))}</td></tr>'
            )
    totals = [("Subtotal", receipt.subtotal_cents)]
    if receipt.discount_cents:
        totals.append(("Discounts", -receipt.discount_cents))
    if receipt.prices_include_tax:
        totals.append(("Before tax", receipt.pretax_cents))
    for t in receipt.taxes:
        label = tax_label(t) + (" incl." if receipt.prices_include_tax else "")
        totals.append((label, t.amount_cents))
    total_rows = "".join(f'<tr><td>{e(k)}</td><td class="n">{e(cents(v))}</td></tr>' for k, v in totals)
    total_rows += f'<tr class="tot"><td>Total</td><td class="n">{e(cents(receipt.total_cents))}</td></tr>'
    for label, amount in tender_rows(receipt):
        total_rows += f'<tr><td>{e(label)}</td><td class="n">{e(cents(amount))}</td></tr>'
    allot = "".join(f"<li>{e(a.bucket)}: {e(a.left)}</li>" for a in receipt.allotment_left)
    loyalty = ""
    if (
        receipt.loyalty_points_redeemed
        or receipt.loyalty_points_earned
        or receipt.loyalty_balance is not None
    ):
        loyalty = (
            f"<p>Loyalty: {receipt.loyalty_points_earned} earned, {receipt.loyalty_points_redeemed} redeemed"
            + (f", balance {receipt.loyalty_balance}" if receipt.loyalty_balance is not None else "")
            + "</p>"
        )
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in receipt.notes)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Receipt {receipt.receipt_number}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{e(s.name)}</h1><p>{e(s.address)}<br>{e(s.phone)}<br>Licence {e(s.licence)}</p></header>"
        f"<p>Receipt #{receipt.receipt_number} &middot; {e(receipt.sold_at_local.replace('T', ' '))}"
        f"<br>Register {e(receipt.register_id)} &middot; {e(receipt.cashier)} &middot; {e(receipt.customer_type)}</p>"
        f"<table>{''.join(rows)}</table><hr><table>{total_rows}</table>"
        + (f"<h2>Purchase limit left today</h2><ul>{allot}</ul>" if allot else "")
        + loyalty
        + f'<footer><p class="note">{e(receipt.rounding_note)}</p>{notes}</footer></body></html>'
    )


# ------------------------------------------------------------------------------------------- text


def render_receipt_text(receipt: Receipt, width: int = 42) -> str:
    """Plain text for a thermal printer (42 columns = 80 mm paper, font A); the printer driver adds the
    ESC/POS framing. Control characters from data are replaced so they cannot become printer commands."""

    def clean(text: str) -> str:
        return "".join(c if c.isprintable() else " " for c in text)

    def pair(left: str, right: str) -> str:
        left, right = clean(left), clean(right)
        room = width - len(right) - 1
        return f"{left[:room]:<{room}} {right}"

    s = receipt.store
    out = [
        clean(s.name).center(width),
        clean(s.address).center(width),
        f"Licence {clean(s.licence)}".center(width),
    ]
    out.append("-" * width)
    out.append(pair(f"Receipt #{receipt.receipt_number}", receipt.sold_at_local.replace("T", " ")))
    out.append(pair(f"Register {receipt.register_id}", receipt.cashier))
    out.append("-" * width)
    for line in receipt.lines:
        out.append(pair(line.name, cents(line.base_cents)))
        out.append(f"  {clean(_qty_text(line))}")
        out.append(f"  {line.package_tag}")
        for d in line.discounts:
            out.append(pair(f"  {d.label}", f"-{cents(d.amount_cents)}"))
    out.append("-" * width)
    out.append(pair("Subtotal", cents(receipt.subtotal_cents)))
    if receipt.discount_cents:
        out.append(pair("Discounts", f"-{cents(receipt.discount_cents)}"))
    for t in receipt.taxes:
        out.append(pair(tax_label(t), cents(t.amount_cents)))
    out.append(pair("TOTAL", cents(receipt.total_cents)))
    for label, amount in tender_rows(receipt):
        out.append(pair(label, cents(amount)))
    if receipt.allotment_left:
        out.append("-" * width)
        out.append("Purchase limit left today")
        out.extend(pair(f"  {a.bucket}", a.left) for a in receipt.allotment_left)
    out.append("-" * width)
    words, row = receipt.rounding_note.split(), ""
    for word in words:  # wrap the rounding note
        if row and len(row) + 1 + len(word) > width:
            out.append(row)
            row = word
        else:
            row = f"{row} {word}".strip()
    if row:
        out.append(row)
    return "\n".join(out) + "\n"


def void_refusal(record: SaleRecord, sold_on: date, today: date) -> Refusal | None:
    """A void takes a sale back as if it never happened, so only on the store-local day it was made (a
    closed day's Z report must not change afterwards); later, it is a return."""
    if record.voided:
        return Refusal(code="already_voided", message=f"Sale {record.receipt_number} is already voided.")
    if sold_on != today:
        return Refusal(
            code="not_same_day", message="Only a same-day sale can be voided; use a return instead."
        )
    return None


class ReturnedStock(msgspec.Struct, frozen=True, kw_only=True):
    """Product a customer brought back: held in quarantine, never back on sale, until destroyed."""

    return_number: int
    receipt_number: int
    tag: str
    product_id: str
    name: str
    units: int
    weight_mg: int
    at: datetime
    status: str = "quarantined"
