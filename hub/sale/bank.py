"""Pay-by-bank at the register: the customer approves the payment request on a phone.

The hub asks the provider (``drivers/paybybank.py``, chosen in store.toml ``[pay_by_bank]``) to send the
request, then polls until the customer approves or declines, the budtender cancels (``cancel_payment``) or
the time runs out — then the request is withdrawn (a late approval is reversed, never kept). The screen
shows the same payment states as a card (``hub/sale/card.py``). A payment approved for a sale that then
fails to commit is refunded (``give_back``, shielded from cancellation).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec
import trio

from drivers.paybybank import AeropayProvider, BankPayment, BankUnavailable, PayByBankProvider
from hub.commands import Request
from hub.domain.tender import Tender, cents
from hub.errors import HubError
from hub.sale import card

if TYPE_CHECKING:
    from actors.register import RegisterActor
    from hub.config import PayByBankSection

log = logging.getLogger("hub.sale.bank")


def provider_from_config(section: PayByBankSection) -> PayByBankProvider | None:
    if section.provider == "aeropay":
        return AeropayProvider(
            section.base_url,
            merchant_id=section.merchant_id,
            api_key=section.api_key,
            api_secret=section.api_secret,
        )
    return None


def _provider(req: Request) -> PayByBankProvider:
    provider = req.services.pay_by_bank
    if provider is None:
        raise HubError("Pay by bank is not set up in this store.", code="no_pay_by_bank")
    return provider


async def take_bank(req: Request, actor: RegisterActor, tender: Tender, reference: str, phone: str) -> Tender:
    provider = _provider(req)
    if not phone.strip():
        raise HubError(
            "Type the customer's phone number to send the pay-by-bank request.", code="phone_required"
        )
    section = req.config.pay_by_bank
    stop = trio.Event()
    payment = card.CardPayment(
        state="waiting",
        message=f"Waiting for the customer to approve {cents(tender.amount_cents)} in the app on their phone.",
        amount_cents=tender.amount_cents,
        tender="pay_by_bank",
        reference=reference,
        stop=stop,
    )
    card.show_payment(actor, payment)
    try:
        sent = await provider.request_payment(tender.amount_cents, reference, phone.strip())
    except BankUnavailable:
        sent = BankPayment(reference=reference, state="declined", detail="unreachable")
    if sent.state == "declined":
        raise _fail(
            actor,
            payment,
            "declined",
            "The pay-by-bank service did not take the request; nothing was charged. Take cash or a card.",
        )
    answer: BankPayment | None = None
    try:
        with trio.move_on_after(section.approve_timeout_seconds):
            while not stop.is_set():
                try:
                    current = await provider.payment(reference)
                except BankUnavailable:
                    current = None
                if current is not None and current.state != "pending":
                    answer = current
                    break
                with trio.move_on_after(section.poll_seconds):
                    await stop.wait()
    except BaseException:  # cancelled while the customer decides: the request must not stay open
        await _withdraw(provider, reference)
        raise
    if answer is not None and answer.state == "approved":
        name = f" by {answer.customer_name}" if answer.customer_name else ""
        payment.state, payment.message = (
            "approved",
            f"Approved in the app{name}. Check the name against the ID.",
        )
        actor.publish()
        return msgspec.structs.replace(tender, reference=reference, auth_code=answer.provider_id)
    if answer is not None and answer.state == "declined":
        raise _fail(
            actor,
            payment,
            "declined",
            "The customer declined in the app, or the bank refused; nothing was "
            "charged. Ask for another way to pay.",
        )
    # cancelled by the budtender or no answer in time: withdraw the request (a late approval is reversed)
    await _withdraw(provider, reference)
    if stop.is_set():
        raise _fail(
            actor,
            payment,
            "cancelled",
            "The pay-by-bank request was cancelled; nothing was charged. Take another way to pay.",
        )
    raise _fail(
        actor,
        payment,
        "timed_out",
        "The customer did not approve in time; the request was withdrawn and "
        "nothing was charged. Try again or take another way to pay.",
    )


async def _withdraw(provider: PayByBankProvider, reference: str) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(30):
        try:
            await provider.cancel(reference)
        except BankUnavailable:
            log.error(
                "pay-by-bank %s: could not withdraw the request; check the provider's portal", reference
            )


def _fail(actor: RegisterActor, payment: card.CardPayment, state: str, message: str) -> HubError:
    """Show the outcome on the register; the error to raise."""
    payment.state, payment.message = state, message
    actor.publish()
    return HubError(message, code=f"bank_{state}")


async def give_back(req: Request, tender: Tender) -> bool:
    provider = req.services.pay_by_bank
    if provider is None:
        return False
    with trio.CancelScope(shield=True), trio.move_on_after(card.GIVE_BACK_S):
        try:
            back = await provider.refund(tender.reference, tender.amount_cents)
        except BankUnavailable:
            log.error(
                "pay-by-bank %s: refund not confirmed; refund it in the provider's portal", tender.reference
            )
            return False
        return bool(back.state in ("cancelled", "refunded"))
    return False
