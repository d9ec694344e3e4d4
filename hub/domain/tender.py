"""Tenders: how a sale is paid, split tender, change.

Kinds: ``cash``; ``debit`` (PIN debit through the payment terminal); ``cashless_atm`` (the terminal runs a
cash withdrawal from the customer's bank, usually rounded up to whole dollars, and the store hands back the
difference in cash, which is why it may give change); ``pay_by_bank`` (an app such as Aeropay or CanPay:
the customer approves the payment on a phone, the bank account is debited); ``store_credit`` (refunds and
goodwill). Credit cards are not a kind: the card networks forbid cannabis purchases on credit.

Rules: the tenders must cover the total; change comes only out of the change-giving tenders (cash and
cashless ATM), so a debit tender may never exceed what is left to pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from hub.domain.catalog import Refusal

TenderKind = Literal["cash", "debit", "cashless_atm", "store_credit", "pay_by_bank"]
TENDER_KINDS: tuple[str, ...] = ("cash", "debit", "cashless_atm", "store_credit", "pay_by_bank")
GIVES_CHANGE: frozenset[str] = frozenset({"cash", "cashless_atm"})
NEEDS_TERMINAL: frozenset[str] = frozenset({"debit", "cashless_atm"})


class Tender(msgspec.Struct, frozen=True, kw_only=True):
    kind: TenderKind
    amount_cents: int
    reference: str = ""  # terminal approval code / transaction id; empty for cash
    terminal_id: str = ""
    card_last4: str = ""  # never the full number
    fee_cents: int = 0  # cashless-ATM convenience fee charged by the processor, if disclosed
    auth_code: str = ""  # the processor's approval code (``reference`` is the attempt's id at the terminal)

    @property
    def charged_cents(self) -> int:
        """What the customer's account is debited: a cashless-ATM withdrawal plus its fee."""
        return self.amount_cents + self.fee_cents


class AtmWithdrawal(msgspec.Struct, frozen=True, kw_only=True):
    """A cashless-ATM payment of ``due_cents``: the terminal runs a cash withdrawal of ``withdrawal_cents``
    (the due amount rounded up to the increment) plus the processor's ``fee_cents``; the store hands the
    customer ``change_cents`` in cash from the drawer. The fee is not part of the sale."""

    due_cents: int
    withdrawal_cents: int
    fee_cents: int
    change_cents: int

    @property
    def charged_cents(self) -> int:
        return self.withdrawal_cents + self.fee_cents


def cashless_atm_withdrawal(due_cents: int, increment_cents: int, fee_cents: int) -> AtmWithdrawal:
    """$43.10 with a $5 increment and a $3 fee: $45.00 withdrawn + $3.00 fee, $1.90 change."""
    if due_cents <= 0:
        raise ValueError("a withdrawal covers a positive amount")
    step = max(increment_cents, 1)
    withdrawal = -(-due_cents // step) * step
    return AtmWithdrawal(
        due_cents=due_cents,
        withdrawal_cents=withdrawal,
        fee_cents=fee_cents,
        change_cents=withdrawal - due_cents,
    )


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """A validated payment of ``total_cents``."""

    total_cents: int
    tenders: tuple[Tender, ...]
    tendered_cents: int
    change_cents: int

    @property
    def cash_received_cents(self) -> int:
        return sum(t.amount_cents for t in self.tenders if t.kind == "cash")

    @property
    def drawer_delta_cents(self) -> int:
        """What the sale does to the cash drawer: cash in, change out (change of a cashless-ATM
        withdrawal is paid from the drawer too)."""
        return self.cash_received_cents - self.change_cents

    def by_kind(self) -> dict[str, int]:
        """Amount applied to the sale per tender kind (change taken off the change-giving tenders, cash
        first), so Σ by_kind == total."""
        applied: dict[str, int] = {}
        for t in self.tenders:
            applied[t.kind] = applied.get(t.kind, 0) + t.amount_cents
        change = self.change_cents
        for kind in ("cash", "cashless_atm"):
            if change and kind in applied:
                take = min(change, applied[kind])
                applied[kind] -= take
                change -= take
        return applied


def remaining_cents(total_cents: int, tenders: Sequence[Tender]) -> int:
    """What is left to pay (0 when covered)."""
    return max(total_cents - sum(t.amount_cents for t in tenders), 0)


def check_tender(
    total_cents: int, tenders: Sequence[Tender], new: Tender, *, terminal_online: bool = True
) -> Refusal | None:
    """Whether ``new`` may be added to ``tenders`` paying ``total_cents`` (the register asks before
    sending a debit to the terminal)."""
    if new.amount_cents <= 0:
        return Refusal(code="bad_amount", message="A tender must be more than $0.00.")
    if new.kind not in TENDER_KINDS:
        return Refusal(code="bad_tender", message=f"Unknown tender {new.kind!r}.")
    if new.kind in NEEDS_TERMINAL and not terminal_online:
        return Refusal(code="terminal_offline", message="The card terminal is offline: cash only for now.")
    left = remaining_cents(total_cents, tenders)
    if left == 0:
        return Refusal(code="already_paid", message="The sale is already paid.")
    if new.kind not in GIVES_CHANGE and new.amount_cents > left:
        return Refusal(
            code="overpay_non_cash",
            message=f"{new.kind.replace('_', ' ').title()} cannot exceed what is left to pay ({cents(left)}); no change is given from it.",
        )
    return None


def settle(total_cents: int, tenders: Sequence[Tender]) -> Settlement | Refusal:
    """Validate a complete payment and compute the change."""
    if total_cents < 0:
        return Refusal(code="negative_total", message="A sale cannot have a negative total; use a return.")
    paid: list[Tender] = []
    for t in tenders:
        if (r := check_tender(total_cents, paid, t)) is not None:
            if r.code == "already_paid":
                return Refusal(code="extra_tender", message="More tenders than the sale needs.")
            return r
        paid.append(t)
    tendered = sum(t.amount_cents for t in paid)
    if tendered < total_cents:
        return Refusal(code="short_tender", message=f"Still {cents(total_cents - tendered)} to pay.")
    change = tendered - total_cents
    change_source = sum(t.amount_cents for t in paid if t.kind in GIVES_CHANGE)
    if change > change_source:  # unreachable given check_tender, kept as the rule's statement
        return Refusal(code="change_from_card", message="Change can only be given from cash.")
    return Settlement(
        total_cents=total_cents, tenders=tuple(paid), tendered_cents=tendered, change_cents=change
    )


def cents(amount: int) -> str:
    """1234 -> "$12.34"; -50 -> "-$0.50"."""
    sign = "-" if amount < 0 else ""
    dollars, c = divmod(abs(amount), 100)
    return f"{sign}${dollars:,}.{c:02d}"
