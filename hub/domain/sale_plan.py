"""The sale and void commits' rules: from what the store holds now, decide everything they write, or refuse.

``plan_sale`` does no I/O. The writer (hub/sale/commit.py) reads the inputs inside the sale's transaction,
asks for the plan and applies it as it is: the receipt and its record, the inventory decrements, the
customer's ledger entry, the state system's outbox entry, the drawer movements, the loyalty balance and
the audit entry. A refusal leaves the store unchanged.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec

from hub.domain import cart as carts
from hub.domain.cart import Cart, ManagerOverride
from hub.domain.catalog import Package, Product, Refusal, sellability
from hub.domain.drawer import DrawerEvent, DrawerSession, change_refusal
from hub.domain.drawer import record as drawer_record
from hub.domain.limits.engine import LimitDecision, LimitItem, format_amount
from hub.domain.limits.rules import Jurisdiction
from hub.domain.pricing import PricedCart
from hub.domain.receipt import (
    AllotmentLeft,
    Receipt,
    SaleRecord,
    StoreIdentity,
    VoidRecord,
    build_receipt,
    sale_overrides,
    void_refusal,
)
from hub.domain.state_payloads import StateSale, StateVoid, sale_key, state_sale
from hub.domain.tender import Settlement, Tender

IDENTIFICATION_METHOD = "Driver's licence"  # the check-in scans or types a government ID


class Buyer(msgspec.Struct, frozen=True, kw_only=True):
    """The checked-in customer as the commit needs them."""

    customer_id: str
    customer_type: str  # adult | medical | caregiver
    registration_number: str = ""


class SaleReads(msgspec.Struct, frozen=True, kw_only=True):
    """What the store holds, read inside the sale's transaction (another register may have sold since the
    cart was built)."""

    packages: dict[str, Package | None]  # by tag, for every package the cart takes from
    products: dict[str, Product | None]  # by product id
    held: Refusal | None  # units online orders hold that this cart would take (hub/orders/stock.py)
    limits: LimitDecision  # the allotment against the ledger as it is now, with this cart
    drawer_id: str  # the drawer session open on this register, "" when none
    drawer: DrawerSession | None
    last_receipt_number: int
    # the customer's loyalty balance when the store keeps their record and books it here; None when there
    # is no record or the customers feature books loyalty in its own hook
    loyalty_points: int | None = None


class SaleRefused(msgspec.Struct, frozen=True, kw_only=True):
    """The sale may not be written. ``stock_changed``: the store changed under the cart (a conflict to show
    as such), otherwise a rule refused it."""

    refusal: Refusal
    stock_changed: bool = False


class SalePlan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one sale writes, decided."""

    receipt_number: int
    record: SaleRecord
    day: date  # the store's local day the sale is listed under
    packages: tuple[Package, ...]  # each package the cart took from, with what is left
    ledger_items: tuple[LimitItem, ...]  # the customer's purchase for the limits windows
    state_sale: StateSale  # the outbox entry's payload; its key is ``state_sale.external_receipt_number``
    outbox_labels: tuple[str, ...]
    drawer: DrawerSession | None  # the drawer session after the sale's cash movements, None if untouched
    drawer_events: tuple[DrawerEvent, ...]
    loyalty_points: int | None  # the customer's new balance to store, None to leave it
    audit_detail: dict[str, Any]

    @property
    def receipt(self) -> Receipt:
        return self.record.receipt


def taking(cart: Cart) -> dict[str, int]:
    """What the whole cart takes from each package (units, or mg for weighed products)."""
    out: dict[str, int] = {}
    for line in cart.lines:
        out[line.package_tag] = out.get(line.package_tag, 0) + line.package_quantity
    return out


def limit_items(cart: Cart | None) -> list[LimitItem]:
    if cart is None:
        return []
    return [LimitItem(attributes=a, quantity=q) for a, q in carts.cart_limit_items(cart)]


def allotment_left(jurisdiction: Jurisdiction, decision: LimitDecision) -> list[AllotmentLeft]:
    """What the receipt prints of the customer's allotment after the sale."""
    out = []
    for bucket_id, left in sorted(decision.remaining.items()):
        b = jurisdiction.buckets[bucket_id]
        out.append(
            AllotmentLeft(bucket=b.label, left=f"{format_amount(left * b.scale, b, round_up=False)} left")
        )
    return out


def plan_sale(
    *,
    cart: Cart,
    buyer: Buyer,
    priced: PricedCart,
    settlement: Settlement,
    reads: SaleReads,
    jurisdiction: Jurisdiction,
    store: StoreIdentity,
    licence: str,
    time_zone: str,
    register_id: str,
    staff: str,
    cashier: str,
    now: datetime,
    today: date,
) -> SalePlan | SaleRefused:
    """The sale's writes, or why it may not be written. Checked in this order: stock, online orders'
    holds, the allotment, the drawer, the loyalty balance."""
    takes = taking(cart)
    # 1. every package still sellable for what the whole cart takes from it
    packages: dict[str, Package] = {}
    for tag, qty in takes.items():
        pkg = reads.packages.get(tag)
        product = reads.products.get(pkg.product_id) if pkg is not None else None
        if (r := sellability(pkg, product, today, qty)) is not None:
            return SaleRefused(refusal=r, stock_changed=True)
        assert pkg is not None
        packages[tag] = pkg
    if reads.held is not None:
        return SaleRefused(refusal=reads.held, stock_changed=True)
    # 2. the allotment, against the ledger as it is now (another register may have sold to them)
    if not reads.limits.allowed:
        message = "Over the limit: " + "; ".join(v.message for v in reads.limits.violations)
        return SaleRefused(refusal=Refusal(code="over_limit", message=message))
    # 3. cash needs an open drawer on this register, and the drawer must hold the change
    cash = settlement.cash_received_cents
    moves_cash = bool(cash or settlement.change_cents)
    if moves_cash and not reads.drawer_id:
        return SaleRefused(
            refusal=Refusal(
                code="no_drawer",
                message="No open drawer on this register: a manager opens one with a counted float.",
            )
        )
    if settlement.change_cents:
        drawer_for_change = reads.drawer if reads.drawer_id else None
        if (r := change_refusal(drawer_for_change, settlement.change_cents)) is not None:
            return SaleRefused(refusal=r)
    # 4. receipt number: sequential per store
    number = reads.last_receipt_number + 1
    receipt = build_receipt(
        store=store,
        receipt_number=number,
        cart=cart,
        priced=priced,
        settlement=settlement,
        cashier=cashier,
        sold_at=now,
        customer_type=buyer.customer_type,
        allotment_left=allotment_left(jurisdiction, reads.limits),
        loyalty_balance=None,
    )
    record = SaleRecord(
        receipt=receipt,
        customer_id=buyer.customer_id,
        drawer_session_id=reads.drawer_id,
        overrides=sale_overrides(cart),
    )
    # 5. inventory: a package sold to its last unit is finished
    left_in = []
    for tag, qty in takes.items():
        pkg = packages[tag]
        left = pkg.quantity - qty
        left_in.append(
            msgspec.structs.replace(pkg, quantity=left, status="finished" if left == 0 else pkg.status)
        )
    # 6. the state system, through the outbox
    medical = buyer.customer_type != "adult"
    payload = state_sale(
        receipt,
        licence=licence,
        time_zone=time_zone,
        terminal_id=register_id,
        patient_license=(buyer.registration_number or None) if medical else None,
        identification_method=IDENTIFICATION_METHOD,
    )
    # 7. the drawer: cash in, or change beyond the cash received (a cashless-ATM withdrawal's rounding,
    # paid from the drawer, refused when the drawer does not hold it)
    events: list[DrawerEvent] = []
    drawer = reads.drawer
    if reads.drawer_id and moves_cash:
        if settlement.drawer_delta_cents < 0:
            events.append(
                DrawerEvent(
                    kind="atm_change",
                    amount_cents=-settlement.drawer_delta_cents,
                    at=now,
                    by=staff,
                    receipt_number=number,
                )
            )
        if settlement.drawer_delta_cents > 0:
            events.append(
                DrawerEvent(
                    kind="cash_sale",
                    amount_cents=settlement.drawer_delta_cents,
                    at=now,
                    by=staff,
                    receipt_number=number,
                )
            )
    for event in events:
        if drawer is None:
            message = f"The drawer session {reads.drawer_id} has no record."
            return SaleRefused(refusal=Refusal(code="conflict", message=message), stock_changed=True)
        updated = drawer_record(drawer, event)
        if isinstance(updated, Refusal):
            return SaleRefused(refusal=updated)
        drawer = updated
    # 8. loyalty: only for a customer the store keeps a record of (they consented); points redeemed since
    # the cart was priced (another register) may not take the balance below zero
    balance = None
    if reads.loyalty_points is not None and (priced.loyalty_points_redeemed or priced.loyalty_points_earned):
        balance = reads.loyalty_points - priced.loyalty_points_redeemed + priced.loyalty_points_earned
        if balance < 0:
            return SaleRefused(
                refusal=Refusal(
                    code="not_enough_points", message="The customer no longer has the points being redeemed."
                )
            )
    return SalePlan(
        receipt_number=number,
        record=record,
        day=today,
        packages=tuple(left_in),
        ledger_items=tuple(limit_items(cart)),
        state_sale=payload,
        outbox_labels=tuple(sorted(takes)),
        drawer=drawer if events else None,
        drawer_events=tuple(events),
        loyalty_points=balance,
        audit_detail={
            "receipt": number,
            "total_cents": receipt.total_cents,
            "tenders": {t.kind: t.amount_cents for t in settlement.tenders},
            "customer": buyer.customer_id,
            "overrides": len(record.overrides),
        },
    )


class VoidPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything voiding a sale writes, decided."""

    record: SaleRecord  # the sale, marked voided
    void: VoidRecord
    packages: tuple[Package, ...]  # each package the sale took from, with its units back
    state_void: StateVoid  # the outbox entry's payload; its key is ``void-<sale key>``
    drawer: DrawerSession | None  # the drawer session after the refund, None if untouched
    drawer_events: tuple[DrawerEvent, ...]
    audit_detail: dict[str, Any]
    cash_back_cents: int  # cash the drawer pays back; negative: cash the customer returns (ATM change)

    @property
    def outbox_key(self) -> str:
        return f"void-{self.state_void.external_receipt_number}"


def plan_void(
    record: SaleRecord,
    *,
    packages: dict[str, Package | None],
    given_back: tuple[Tender, ...],
    drawer_id: str,
    drawer: DrawerSession | None,
    override: ManagerOverride,
    licence: str,
    register_id: str,
    staff: str,
    now: datetime,
    sold_on: date,
    today: date,
) -> VoidPlan | SaleRefused:
    """A void takes the sale back as if it never happened, on the day it was made: its units back on their
    packages (a finished package is active again), its cash back from the drawer (or, for a cashless-ATM
    sale, the change the drawer paid out back into it), the state told. ``given_back``: the card and bank
    payments the terminal and the provider gave back already."""
    if (refusal := void_refusal(record, sold_on, today)) is not None:
        return SaleRefused(refusal=refusal)
    r = record.receipt
    back: dict[str, Package] = {}
    for ln in r.lines:
        pkg = back.get(ln.package_tag) or packages.get(ln.package_tag)
        if pkg is not None:
            units = ln.weight_mg if ln.sold_by == "weight" else ln.quantity
            status = "active" if pkg.status == "finished" else pkg.status
            back[ln.package_tag] = msgspec.structs.replace(pkg, quantity=pkg.quantity + units, status=status)
    cash = sum(t.amount_cents for t in r.tenders if t.kind == "cash") - r.change_cents
    refund = ((Tender(kind="cash", amount_cents=cash),) if cash > 0 else ()) + given_back
    void = VoidRecord(
        receipt_number=r.receipt_number,
        register_id=register_id,
        voided_at=now,
        manager_id=override.manager_id,
        reason=override.reason,
        refund_tenders=refund,
        drawer_session_id=drawer_id,
    )
    events: list[DrawerEvent] = []
    if cash > 0 and drawer_id:
        events.append(
            DrawerEvent(
                kind="cash_refund",
                amount_cents=cash,
                at=now,
                by=staff,
                reason=f"void: {override.reason}",
                manager_id=override.manager_id,
                override_ref=override.reference,
                receipt_number=r.receipt_number,
            )
        )
    if cash < 0 and drawer_id:
        # a cashless-ATM sale: the withdrawal is voided at the terminal and the customer hands back the
        # change the drawer paid out
        events.append(
            DrawerEvent(
                kind="atm_change_returned",
                amount_cents=-cash,
                at=now,
                by=staff,
                reason=f"void: {override.reason}",
                receipt_number=r.receipt_number,
            )
        )
    for event in events:
        if drawer is None:
            message = f"The drawer session {drawer_id} has no record."
            return SaleRefused(refusal=Refusal(code="conflict", message=message), stock_changed=True)
        updated = drawer_record(drawer, event)
        if isinstance(updated, Refusal):
            return SaleRefused(refusal=updated)
        drawer = updated
    return VoidPlan(
        record=msgspec.structs.replace(record, voided=True),
        void=void,
        packages=tuple(back.values()),
        state_void=StateVoid(
            external_receipt_number=sale_key(licence, r.receipt_number),
            voided_at=now,
            package_labels=tuple(sorted({ln.package_tag for ln in r.lines})),
        ),
        drawer=drawer if events else None,
        drawer_events=tuple(events),
        audit_detail={
            "receipt": r.receipt_number,
            "manager": override.manager_id,
            "reason": override.reason,
            "refund_cents": cash,
        },
        cash_back_cents=cash,
    )
