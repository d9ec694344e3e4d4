"""Card payments at the register: taking a card tender through the terminal, giving it back, and what the
register's screen shows meanwhile.

Money is never orphaned: a charge approved for a sale that then fails to commit — for any reason, a
storage error, a stopped writer or a cancellation — is voided at the terminal (``give_back``, shielded from
cancellation). Every attempt has its own terminal reference (``attempt_reference``), so a declined card can
be tried again on the same cart and the terminal never answers a retry with an old decline.

The register snapshot carries the payment in progress (``payment_view``) as
``{state, message, amount_cents, tender}`` with state "waiting" | "recovering" | "approved" | "declined" |
"timed_out" | "cancelled", or ``None``. ``cancel_payment`` runs beside the register actor (which is busy
waiting for the card) and asks the terminal to abort.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from hub.access import HandlerTable
from hub.commands import Request
from hub.domain import card_outcome
from hub.domain.devices import PaymentProgress
from hub.domain.tender import Tender, cents
from hub.errors import HubError
from hub.sale import protocol as p

if TYPE_CHECKING:
    from actors.register import RegisterActor

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()

log = logging.getLogger("hub.sale.card")
# how long the register's connection waits for ``pay``: longer than any terminal's wait (charge timeout
# ≤ 200 s in store.toml, plus abort and status lookup; see PaymentTerminalConfig.wait_s)
PAY_WAIT_S = 330.0
GIVE_BACK_S = 90.0


class CardPayment(msgspec.Struct, kw_only=True):
    state: str
    message: str
    amount_cents: int
    tender: str
    reference: str = ""
    device_id: str = ""
    stop: Any = None  # pay by bank: a trio.Event set by cancel_payment


def attempt_reference(cart_id: str, index: int) -> str:
    """A terminal reference unique to this attempt: SPIn's ReferenceId is 1–50 alphanumerics, "unique
    within one batch"; the cart id keeps it traceable, the random tail makes a retry a new attempt."""
    stem = re.sub(r"[^A-Za-z0-9]", "", cart_id)[-24:]
    return f"{stem}{index}{secrets.token_hex(5)}"


def show_payment(actor: RegisterActor, payment: CardPayment | None) -> None:
    actor.show_payment(payment)


def payment_view(actor: RegisterActor, cart_open: bool) -> dict[str, Any] | None:
    payment = actor.card_payment
    if payment is None:
        return None
    if not cart_open and payment.state not in ("waiting", "recovering"):
        return None  # an outcome is news for the cart it was for, not for the next customer
    return {
        "state": payment.state,
        "message": payment.message,
        "amount_cents": payment.amount_cents,
        "tender": payment.tender,
    }


def clear(actor: RegisterActor) -> None:
    if actor.card_payment is not None:
        show_payment(actor, None)


async def take_card(actor: RegisterActor, terminal: Any, tender: Tender, reference: str) -> Tender:
    """Charge ``tender`` (plus a cashless-ATM fee) on ``terminal``; the approved tender, or a refusal
    with a plain reason and what to do next. The register's snapshot follows every step."""
    if terminal is None:
        raise HubError("No card terminal on this register: cash only.", code="terminal_offline")
    charged = tender.charged_cents
    payment = CardPayment(
        state="waiting",
        message=f"Waiting for the card: {cents(charged)} on the terminal.",
        amount_cents=charged,
        tender=tender.kind,
        reference=reference,
        device_id=getattr(terminal, "device_id", ""),
    )
    show_payment(actor, payment)

    def progress(update: PaymentProgress) -> None:
        payment.state = update.state
        payment.message = update.detail or payment.message
        actor.publish()

    try:
        result = await terminal.charge(charged, reference, on_progress=progress)
    except trio.TooSlowError:
        # the terminal actor never answered: say so, never crash the register. The handle has asked the
        # terminal to cancel, and an approval that still comes is given back (hub/sale/reversals.py)
        payment.state, payment.message = "timed_out", card_outcome.timed_out("unknown").text
        actor.publish()
        raise HubError(payment.message, code="card_timeout") from None
    except BaseException:
        payment.state, payment.message = "timed_out", card_outcome.timed_out("unknown").text
        actor.publish()
        raise
    status = getattr(result, "status", "")
    if status == "approved":
        last4 = getattr(result, "card_last4", "")
        payment.state = "approved"
        payment.message = f"Approved{' — card ending ' + last4 if last4 else ''}. Completing the sale…"
        actor.publish()
        return msgspec.structs.replace(
            tender,
            reference=reference,
            auth_code=getattr(result, "approval_code", ""),
            terminal_id=getattr(terminal, "device_id", ""),
            card_last4=last4,
        )
    if status == "unresolved":
        # never a decline: the terminal may hold money it did not give back (a partial approval whose void
        # failed); hub/sale/reversals.py keeps retrying the void, the budtender voids it at the terminal
        payment.state = "timed_out"
        payment.message = (
            f"Money may have been taken from the card ({cents(getattr(result, 'amount_cents', 0) or charged)}) "
            f"and the terminal did not give it back: void it at the terminal (reference {reference}). "
            "The hub keeps trying too."
        )
        actor.publish()
        raise HubError(payment.message, code="card_unresolved")
    recovered = bool(getattr(result, "recovered", False))
    if status in ("declined", "cancelled", "error") and recovered:
        state, msg = "timed_out", card_outcome.timed_out("not_charged")
    elif status == "declined":
        state, msg = "declined", card_outcome.declined(getattr(result, "decline_code", ""))
    elif status == "cancelled":
        state, msg = "cancelled", card_outcome.cancelled()
    elif status == "offline":
        state, msg = "declined", card_outcome.offline()
    elif status == "timeout":
        state, msg = "timed_out", card_outcome.timed_out("unknown")
    else:
        state, msg = (
            "declined",
            card_outcome.CardMessage(
                reason="The terminal refused the payment; nothing was charged.",
                next_step="Try again or take cash.",
            ),
        )
    payment.state, payment.message = state, msg.text
    actor.publish()
    code = {"timed_out": "card_timeout", "cancelled": "card_cancelled"}.get(
        state, f"card_{status or 'failed'}"
    )
    raise HubError(msg.text, code=code)


async def give_back(terminal: Any, tender: Tender) -> bool:
    """Void an approved charge whose sale did not happen. Shielded: a cancelled ``pay`` (the register
    actor stopping, the hub shutting down) still gives the money back before it unwinds."""
    with trio.CancelScope(shield=True), trio.move_on_after(GIVE_BACK_S):
        try:
            ok = bool(await terminal.void(tender.reference, tender.charged_cents))
        except Exception:
            log.exception("could not void card payment %s after a failed sale", tender.reference)
            return False
        if not ok:
            log.error(
                "card payment %s: the terminal did not confirm the void; check its batch", tender.reference
            )
        return ok
    log.error(
        "card payment %s: no answer to the void in %ss; check the terminal's batch",
        tender.reference,
        GIVE_BACK_S,
    )
    return False


@HANDLERS.handles(p.CancelPayment, scope="connection", idempotent=False)
async def cancel_payment(req: Request, msg: p.CancelPayment) -> Any:
    actor = req.hub.registers[req.register_id]
    payment = actor.card_payment
    if payment is None or payment.state not in ("waiting", "recovering"):
        raise HubError("No card payment is waiting at the terminal.", code="no_payment")
    if payment.stop is not None:  # pay by bank: stop waiting and withdraw the request
        payment.stop.set()
        payment.message = "Cancelling the pay-by-bank request…"
        actor.publish()
        return {"cancelling": True}
    terminal = req.hub.services.terminal_handles.get(payment.device_id)
    if terminal is None:
        raise HubError("The card terminal is not connected.", code="terminal_offline")
    await terminal.cancel(payment.reference)
    payment.message = "Cancelling at the terminal…"
    actor.publish()
    return {"cancelling": True}
