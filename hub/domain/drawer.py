"""Cash drawer sessions: open with a counted float, record every cash movement, close with a blind count.

Life of a session: ``open`` -> (events) -> ``counted`` (blind count submitted; variance known) ->
``closed`` (no variance, or a manager signed the variance off with a note). A hand-over closes the
outgoing session with a count and opens the next one with that same count as its float.

Blind count: the person closing counts without seeing what the drawer should hold. ``register_view`` is
what may be sent to a register; it never contains the expected cash while the session is open. Only after
the count is submitted does ``close_summary`` reveal expected, counted and variance (vendor SOPs converge
on this, compliance-and-market.md §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

import msgspec

from hub.domain.catalog import Refusal
from hub.domain.tender import cents


class Denomination(msgspec.Struct, frozen=True):
    code: str
    cents: int
    label: str


# US currency in circulation. $1 exists as a bill and as a coin; they are counted separately.
DENOMINATIONS: tuple[Denomination, ...] = (
    Denomination("B100", 10_000, "$100 bill"),
    Denomination("B50", 5_000, "$50 bill"),
    Denomination("B20", 2_000, "$20 bill"),
    Denomination("B10", 1_000, "$10 bill"),
    Denomination("B5", 500, "$5 bill"),
    Denomination("B2", 200, "$2 bill"),
    Denomination("B1", 100, "$1 bill"),
    Denomination("C100", 100, "$1 coin"),
    Denomination("C50", 50, "50¢ coin"),
    Denomination("C25", 25, "25¢ coin"),
    Denomination("C10", 10, "10¢ coin"),
    Denomination("C5", 5, "5¢ coin"),
    Denomination("C1", 1, "1¢ coin"),
)
_VALUE = {d.code: d.cents for d in DENOMINATIONS}

# atm_change: the cash handed back from the drawer on a cashless-ATM withdrawal rounded above the sale;
# atm_change_returned: that change coming back when the sale is voided
EventKind = Literal[
    "cash_sale",
    "cash_refund",
    "drop",
    "paid_out",
    "paid_in",
    "adjustment",
    "atm_change",
    "atm_change_returned",
]
# Issue 7: drops, paid-outs and adjustments need a manager PIN; a paid-in (cash added from the safe) too.
NEEDS_MANAGER: frozenset[str] = frozenset({"drop", "paid_out", "paid_in", "adjustment"})
NEEDS_REASON: frozenset[str] = frozenset({"cash_refund", "drop", "paid_out", "paid_in", "adjustment"})


class Count(msgspec.Struct, frozen=True, kw_only=True):
    """Pieces per denomination code (see DENOMINATIONS)."""

    pieces: dict[str, int]

    @property
    def total_cents(self) -> int:
        return sum(_VALUE[code] * n for code, n in self.pieces.items())


def count_of(pieces: Mapping[str, int]) -> Count | Refusal:
    """A validated count: known denominations, whole non-negative pieces; zero entries dropped."""
    clean: dict[str, int] = {}
    for code, n in pieces.items():
        if code not in _VALUE:
            return Refusal(code="bad_denomination", message=f"Unknown denomination {code!r}.")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            return Refusal(code="bad_count", message=f"{code}: the count must be a whole number, 0 or more.")
        if n:
            clean[code] = n
    return Count(pieces=dict(sorted(clean.items(), key=lambda kv: -_VALUE[kv[0]])))


class DrawerEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A cash movement. ``amount_cents`` is positive, except an adjustment which carries its sign."""

    kind: EventKind
    amount_cents: int
    at: datetime
    by: str  # staff id
    reason: str = ""
    manager_id: str = ""
    override_ref: str = ""  # audit reference of the manager's approval
    receipt_number: int = 0  # for sales and refunds
    bag_number: str = ""  # for drops to the safe

    @property
    def effect_cents(self) -> int:
        """What the event does to the cash in the drawer."""
        if self.kind in ("cash_sale", "paid_in", "adjustment", "atm_change_returned"):
            return self.amount_cents
        return -self.amount_cents


class CountRecord(msgspec.Struct, frozen=True, kw_only=True):
    count: Count
    counted_by: str
    at: datetime
    witness: str = ""


class SignOff(msgspec.Struct, frozen=True, kw_only=True):
    manager_id: str
    note: str
    at: datetime


class Deposit(msgspec.Struct, frozen=True, kw_only=True):
    bag_number: str
    amount_cents: int
    sealed_by: str
    at: datetime
    witness: str = ""


class DrawerSession(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    register_id: str
    opening: CountRecord
    status: Literal["open", "counted", "closed"] = "open"
    events: tuple[DrawerEvent, ...] = ()
    closing: CountRecord | None = None
    sign_off: SignOff | None = None
    deposit: Deposit | None = None
    handed_over_to: str = ""  # session id of the next session after a hand-over
    handed_over_from: str = ""
    # The cash sales the store folded out of ``events`` (hub/sale/drawer.py keeps each one as a row of its
    # own): their count and sum, running totals, so a sale neither re-reads nor re-writes the session's day.
    # A cash sale is either in ``events`` (recorded, not yet stored) or in these totals, never in both.
    folded_sales: int = 0
    folded_sales_cents: int = 0

    @property
    def expected_cents(self) -> int:
        """Opening float + every event. Never send this to a register before the blind count."""
        return (
            self.opening.count.total_cents
            + self.folded_sales_cents
            + sum(e.effect_cents for e in self.events)
        )

    @property
    def cash_sales(self) -> int:
        """How many cash sales the session took."""
        return self.folded_sales + sum(1 for e in self.events if e.kind == "cash_sale")

    @property
    def cash_sales_cents(self) -> int:
        """The cash the session's sales brought in."""
        return self.folded_sales_cents + sum(e.amount_cents for e in self.events if e.kind == "cash_sale")

    @property
    def variance_cents(self) -> int | None:
        """counted − expected (negative = short); None until counted."""
        if self.closing is None:
            return None
        return self.closing.count.total_cents - self.expected_cents


MANAGER_ROLES: frozenset[str] = frozenset({"manager", "admin"})


def may_open(counter_role: str, witness_role: str) -> Refusal | None:
    """Issue 4: when a register has no open drawer, a manager opens one with a counted float; the manager
    may be the one counting or the witness."""
    if counter_role in MANAGER_ROLES or witness_role in MANAGER_ROLES:
        return None
    return Refusal(
        code="manager_required", message="A manager opens a drawer (as the counter or the witness)."
    )


def open_session(
    session_id: str,
    register_id: str,
    pieces: Mapping[str, int],
    *,
    counted_by: str,
    witness: str,
    at: datetime,
    open_session_on_register: str = "",
) -> DrawerSession | Refusal:
    """Open a drawer with a counted float. One open drawer per register: pass the id of the register's
    open session, if any, as ``open_session_on_register``."""
    if open_session_on_register:
        return Refusal(
            code="drawer_already_open",
            message=f"Register {register_id} already has an open drawer ({open_session_on_register}).",
        )
    if not witness or witness == counted_by:
        return Refusal(code="witness_required", message="The opening count needs a second person as witness.")
    count = count_of(pieces)
    if isinstance(count, Refusal):
        return count
    return DrawerSession(
        session_id=session_id,
        register_id=register_id,
        opening=CountRecord(count=count, counted_by=counted_by, witness=witness, at=at),
    )


def record(session: DrawerSession, event: DrawerEvent) -> DrawerSession | Refusal:
    """Record a cash movement against an open session."""
    if session.status != "open":
        return Refusal(code="drawer_not_open", message="This drawer is not open.")
    if event.kind == "adjustment":
        if event.amount_cents == 0:
            return Refusal(code="bad_amount", message="An adjustment of $0.00 changes nothing.")
    elif event.amount_cents <= 0:
        return Refusal(code="bad_amount", message="The amount must be more than $0.00.")
    if event.kind in NEEDS_MANAGER and not (event.manager_id and event.override_ref):
        return Refusal(
            code="override_required",
            message=f"A {event.kind.replace('_', '-')} needs a manager's approval.",
        )
    if event.kind in NEEDS_REASON and not event.reason.strip():
        return Refusal(code="reason_required", message=f"A {event.kind.replace('_', ' ')} needs a reason.")
    if event.kind == "drop" and not event.bag_number:
        return Refusal(code="bag_required", message="A drop to the safe needs the bag number.")
    if event.effect_cents < 0 and session.expected_cents + event.effect_cents < 0:
        # A drawer cannot pay out money it does not hold; the refusal does not reveal the expected cash.
        return Refusal(code="not_enough_cash", message="The drawer does not hold that much cash.")
    return msgspec.structs.replace(session, events=(*session.events, event))


def fold_cash_sales(session: DrawerSession) -> tuple[DrawerSession, tuple[DrawerEvent, ...]]:
    """The session with its recorded cash sales moved into its running totals, and those sales (in the
    order they were recorded) for the store to keep apart; every sum the session answers stays the same."""
    sales = tuple(e for e in session.events if e.kind == "cash_sale")
    if not sales:
        return session, ()
    folded = msgspec.structs.replace(
        session,
        events=tuple(e for e in session.events if e.kind != "cash_sale"),
        folded_sales=session.folded_sales + len(sales),
        folded_sales_cents=session.folded_sales_cents + sum(e.amount_cents for e in sales),
    )
    return folded, sales


def change_refusal(session: DrawerSession | None, change_cents: int) -> Refusal | None:
    """Change is paid out of the cash the drawer held before the sale: the customer's own notes cannot
    make change for themselves. The refusal does not reveal the expected cash (blind count)."""
    if change_cents <= 0:
        return None
    if session is None or session.status != "open":
        return Refusal(
            code="no_drawer",
            message="No open drawer on this register: a manager opens one with a counted float.",
        )
    if change_cents > session.expected_cents:
        return Refusal(
            code="not_enough_change",
            message=(
                f"The drawer cannot give {cents(change_cents)} in change: ask for a smaller note or the exact "
                "amount, or take another tender."
            ),
        )
    return None


class RegisterDrawerView(msgspec.Struct, frozen=True, kw_only=True):
    """What a register may show about its drawer: never the expected cash before the blind count."""

    session_id: str
    register_id: str
    status: str
    opened_by: str
    opened_at: datetime
    counted_cents: int | None = None
    variance_cents: int | None = None


def register_view(session: DrawerSession) -> RegisterDrawerView:
    counted = session.closing.count.total_cents if session.closing else None
    return RegisterDrawerView(
        session_id=session.session_id,
        register_id=session.register_id,
        status=session.status,
        opened_by=session.opening.counted_by,
        opened_at=session.opening.at,
        counted_cents=counted,
        variance_cents=session.variance_cents if session.status != "open" else None,
    )


def submit_blind_count(
    session: DrawerSession, pieces: Mapping[str, int], *, counted_by: str, at: datetime, witness: str = ""
) -> DrawerSession | Refusal:
    """Record the closing count. With no variance the session closes; otherwise it waits for a manager."""
    if session.status != "open":
        return Refusal(code="drawer_not_open", message="This drawer has already been counted.")
    count = count_of(pieces)
    if isinstance(count, Refusal):
        return count
    counted = msgspec.structs.replace(
        session,
        status="counted",
        closing=CountRecord(count=count, counted_by=counted_by, witness=witness, at=at),
    )
    if counted.variance_cents == 0:
        return msgspec.structs.replace(counted, status="closed")
    return counted


def sign_off(session: DrawerSession, *, manager_id: str, note: str, at: datetime) -> DrawerSession | Refusal:
    """A manager accepts a variance, with a note saying what happened (issue 7)."""
    if session.status != "counted":
        return Refusal(
            code="nothing_to_sign", message="Only a counted drawer with a variance awaits sign-off."
        )
    if not manager_id:
        return Refusal(code="override_required", message="A manager must sign off the variance.")
    if not note.strip():
        return Refusal(code="note_required", message="Say what happened: a variance needs a note.")
    return msgspec.structs.replace(
        session, status="closed", sign_off=SignOff(manager_id=manager_id, note=note.strip(), at=at)
    )


class CloseSummary(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    register_id: str
    opening_cents: int
    cash_sales_cents: int
    cash_refunds_cents: int
    drops_cents: int
    paid_outs_cents: int
    paid_ins_cents: int
    adjustments_cents: int
    expected_cents: int
    counted_cents: int
    variance_cents: int
    needs_sign_off: bool
    signed_off_by: str = ""
    note: str = ""
    atm_change_cents: int = 0  # cash handed back on cashless-ATM withdrawals


def close_summary(session: DrawerSession) -> CloseSummary | Refusal:
    """Expected vs counted — only once the blind count is in."""
    if session.closing is None:
        return Refusal(code="count_not_submitted", message="Submit the blind count first.")

    def total(kind: str) -> int:
        return sum(e.amount_cents for e in session.events if e.kind == kind)

    variance = session.variance_cents
    assert variance is not None
    return CloseSummary(
        session_id=session.session_id,
        register_id=session.register_id,
        opening_cents=session.opening.count.total_cents,
        cash_sales_cents=session.cash_sales_cents,
        cash_refunds_cents=total("cash_refund"),
        drops_cents=total("drop"),
        paid_outs_cents=total("paid_out"),
        paid_ins_cents=total("paid_in"),
        adjustments_cents=total("adjustment"),
        expected_cents=session.expected_cents,
        counted_cents=session.closing.count.total_cents,
        variance_cents=variance,
        needs_sign_off=session.status == "counted",
        signed_off_by=session.sign_off.manager_id if session.sign_off else "",
        note=session.sign_off.note if session.sign_off else "",
        atm_change_cents=total("atm_change"),
    )


def record_deposit(
    session: DrawerSession,
    *,
    bag_number: str,
    amount_cents: int,
    sealed_by: str,
    at: datetime,
    witness: str = "",
) -> DrawerSession | Refusal:
    """The bank deposit taken from a closed drawer (what is left is next day's float)."""
    if session.status != "closed" or session.closing is None:
        return Refusal(
            code="drawer_not_closed", message="Close the drawer (and sign off any variance) first."
        )
    if session.deposit is not None:
        return Refusal(code="deposit_recorded", message="This drawer's deposit is already recorded.")
    if not bag_number:
        return Refusal(code="bag_required", message="Record the deposit bag number.")
    if amount_cents <= 0 or amount_cents > session.closing.count.total_cents:
        return Refusal(
            code="bad_amount",
            message=f"The deposit must be between $0.01 and the counted {cents(session.closing.count.total_cents)}.",
        )
    return msgspec.structs.replace(
        session,
        deposit=Deposit(
            bag_number=bag_number, amount_cents=amount_cents, sealed_by=sealed_by, witness=witness, at=at
        ),
    )


def hand_over(
    session: DrawerSession,
    pieces: Mapping[str, int],
    *,
    outgoing: str,
    incoming: str,
    new_session_id: str,
    at: datetime,
) -> tuple[DrawerSession, DrawerSession] | Refusal:
    """Shift change without emptying the drawer: the outgoing person counts (blind), the incoming person
    witnesses; the old session is counted (closed when it balances) and the new one opens with the same
    count as its float."""
    if not incoming or incoming == outgoing:
        return Refusal(
            code="witness_required", message="The incoming person must witness the hand-over count."
        )
    old = submit_blind_count(session, pieces, counted_by=outgoing, witness=incoming, at=at)
    if isinstance(old, Refusal):
        return old
    new = open_session(
        new_session_id, session.register_id, pieces, counted_by=incoming, witness=outgoing, at=at
    )
    if isinstance(new, Refusal):
        return new
    old = msgspec.structs.replace(old, handed_over_to=new_session_id)
    new = msgspec.structs.replace(new, handed_over_from=session.session_id)
    return old, new
