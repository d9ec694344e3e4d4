"""Live-protocol commands of the sale at the register (all need a logged-in staff member).

The register's snapshot (topic ``register:<id>``) carries everything the screen shows; see
``hub/sale/snapshot.py`` for its shape. Commands answer with small results; the screen redraws from the
snapshot that follows every change.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

from hub.live.frames import Command, Pin, StaffId

Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=300)]
Cents = Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
# every number and text of a message is bounded here, before any handler runs (a 2^64 must be refused as
# a field error, never reach the cart or the store)
ReceiptNumber = Annotated[int, msgspec.Meta(ge=1, le=10**12)]
LineNumber = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
Denomination = Annotated[str, msgspec.Meta(min_length=1, max_length=8)]
Counted = Annotated[
    dict[Denomination, Annotated[int, msgspec.Meta(ge=0, le=100_000)]], msgspec.Meta(max_length=32)
]


class ManagerApproval(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A manager approves at the register by entering their ID and PIN (checked, then audited)."""

    manager: StaffId
    pin: Pin
    reason: Reason


class Scan(Command, tag="scan"):
    """Anything a scanner (or a keyboard-wedge scan typed into the page) produced; routed by content:
    a driver's licence checks the customer in, a package tag or product barcode adds to the cart."""

    data: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    source: Literal["wedge", "serial", "demo"] = "wedge"


class CheckInManual(Command, tag="check_in_manual"):
    """The ID cannot be scanned: staff type the birth date and expiry from the card (audited, reason)."""

    birth_date: date
    id_expiry: date
    id_jurisdiction: Annotated[str, msgspec.Meta(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]
    id_number: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    reason: Reason


class SetCustomerType(Command, tag="set_customer_type"):
    """Medical customers give their registration (card) number and its expiry."""

    customer_type: Literal["adult", "medical", "caregiver"]
    registration_number: Annotated[str, msgspec.Meta(max_length=40)] = ""
    registration_expiry: date | None = None


class EndCustomer(Command, tag="end_customer"):
    """Clear the customer and the cart (nothing sold)."""


class Search(Command, tag="search"):
    query: Annotated[str, msgspec.Meta(max_length=80)]
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 20


class AddPackage(Command, tag="add_package"):
    tag: Tag
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1


class AddProduct(Command, tag="add_product"):
    """Add by product (search result or product barcode): the hub picks the package, oldest first."""

    product_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1


class SetQuantity(Command, tag="set_quantity"):
    line: LineNumber
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1000)]


class WeighLine(Command, tag="weigh_line"):
    """Weigh bulk flower from the package on the paired scale's current stable reading. Weighing a line
    that is already weighed (``line``, or the cart's weighed line of ``tag``) replaces its weight."""

    tag: Tag
    line: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class ManualWeight(Command, tag="manual_weight"):
    """A typed weight: only with a manager's approval (the scale is broken, say)."""

    tag: Tag
    weight_mg: Annotated[int, msgspec.Meta(gt=0, le=1_000_000)]
    approval: ManagerApproval
    line: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class RemoveLine(Command, tag="remove_line"):
    line: LineNumber


class ApplyDiscount(Command, tag="apply_discount"):
    """A line discount (``line`` given) or a cart discount; beyond the role's threshold it needs approval."""

    kind: Literal["percent", "fixed"]
    value: Cents  # percent: whole percent 1-100; fixed: cents
    reason: Reason
    line: LineNumber | None = None
    approval: ManagerApproval | None = None


class ClearDiscounts(Command, tag="clear_discounts"):
    pass


class RedeemPoints(Command, tag="redeem_points"):
    points: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]


class ParkCart(Command, tag="park_cart"):
    pass


class RecallCart(Command, tag="recall_cart"):
    cart_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class TenderLine(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["cash", "debit", "cashless_atm", "pay_by_bank"]
    amount_cents: Cents
    phone: Annotated[str, msgspec.Meta(max_length=20)] = ""  # pay by bank: where the request is sent


class Pay(Command, tag="pay"):
    """Take payment and commit the sale. Card tenders go through the payment terminal first."""

    tenders: Annotated[list[TenderLine], msgspec.Meta(min_length=1, max_length=4)]


class CancelPayment(Command, tag="cancel_payment"):
    """Cancel the card payment the terminal is waiting on (the terminal aborts; nothing is charged)."""


class VoidSale(Command, tag="void_sale"):
    receipt_number: ReceiptNumber
    approval: ManagerApproval


class ReturnItems(Command, tag="return_items"):
    """Return lines of an earlier sale: the product goes to quarantine (never back on sale)."""

    receipt_number: ReceiptNumber
    # receipt line id (as a string) -> units or mg returned
    lines: Annotated[
        dict[
            Annotated[str, msgspec.Meta(min_length=1, max_length=8)],
            Annotated[int, msgspec.Meta(ge=0, le=10**9)],
        ],
        msgspec.Meta(min_length=1, max_length=200),
    ]
    approval: ManagerApproval
    refund_kind: Literal["cash", "original"] = "cash"


class OpenDrawer(Command, tag="open_drawer"):
    """Open this register's drawer with a counted float: denomination code (``B20``, ``C25``: see
    ``hub/domain/drawer.py``) -> pieces counted. A second person witnesses with their PIN."""

    counted: Counted
    witness: StaffId | None = None
    witness_pin: Pin | None = None


class ScaleZero(Command, tag="scale_zero"):
    pass


class ScaleTare(Command, tag="scale_tare"):
    pass


class ReprintReceipt(Command, tag="reprint_receipt"):
    """Print a receipt again on this register's printer (marked as a copy) and show it."""

    receipt_number: ReceiptNumber


class DemoScale(Command, tag="demo_scale"):
    """Demo store only: set the simulated scale's weight and motion."""

    weight_mg: Annotated[int, msgspec.Meta(ge=-100_000, le=10_000_000)]
    motion: bool = False


class DemoTerminal(Command, tag="demo_terminal"):
    """Demo store only: make the simulated card terminal (the SPIn emulator) approve, decline (with an
    ISO 8583 code: "51" insufficient funds, "55" wrong PIN …), wait for a card that never comes, time out
    after ``timeout_seconds`` (the terminal approves, the proxy gives up), lose its answer, or go offline."""

    mode: Literal["approve", "decline", "wait", "timeout", "lose_answer", "offline"]
    decline_code: Annotated[str, msgspec.Meta(min_length=2, max_length=2, pattern="^[0-9A-Z]{2}$")] = "51"
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 120.0


class TakeCustomer(Command, tag="take_customer"):
    """Serve a customer from the store's queue: the one waiting longest, or ``ticket``. With
    ``park_current`` the open cart is parked first (kept for the customer at the counter)."""

    ticket: Annotated[str, msgspec.Meta(min_length=1, max_length=8)] | None = None
    park_current: bool = False


class LeaveQueue(Command, tag="leave_queue"):
    """A waiting customer went away without buying."""

    ticket: Annotated[str, msgspec.Meta(min_length=1, max_length=8)]


class Browse(Command, tag="browse"):
    """Nothing typed yet: the categories with something in stock, and the products in stock (of one
    category, when ``category`` is given)."""

    category: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=60)] = 24


class LookUpReceipt(Command, tag="look_up_receipt"):
    """A receipt scanned (or typed) at the register for a return or a reprint: its lines, and what
    already came back."""

    receipt_number: Annotated[int, msgspec.Meta(ge=1, le=2**53)]


# ---- devices at the register ----
class PrintExitLabel(Command, tag="print_exit_label"):
    """Print the exit label of a package (tag as text and Code 128, product, weight, THC) on the
    register's label printer."""

    tag: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    copies: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1
