"""Paying for a sale: tenders settled, cards charged, the sale committed, the register cleared.

Cards and bank apps are charged before the commit and given back if the sale is not saved.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec

from hub.access import HandlerTable
from hub.commands import Request
from hub.domain.catalog import Refusal
from hub.domain.drawer import DrawerSession, change_refusal
from hub.domain.tender import NEEDS_TERMINAL, Tender, cashless_atm_withdrawal, cents, settle
from hub.errors import HubError
from hub.orders.pickup import complete_in_txn
from hub.sale import bank, card, reversals
from hub.sale import protocol as p
from hub.sale.commit import commit_sale
from hub.sale.context import (
    Refused,
    RegisterSale,
    actor_of,
    ctx_of,
    need_customer,
    notice,
    paired_device,
    refuse,
    sale_of,
    sale_writer,
)
from hub.sale.drawer import open_drawer_id
from hub.sale.view import price_of
from hub.store.env import tget
from hub.store.keys import text

if TYPE_CHECKING:
    pass

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()

log = logging.getLogger("hub.sale")


def _tender(terminal: Any, kind: str, amount_cents: int) -> Tender:
    """A tender as the register asked for it; a cashless-ATM tender on a terminal set up for it becomes the
    withdrawal the terminal will run (rounded up to its increment, with its fee)."""
    tender = Tender(kind=kind, amount_cents=amount_cents)  # type: ignore[arg-type]
    atm = getattr(terminal, "cashless_atm", None)
    if kind == "cashless_atm" and atm is not None and amount_cents > 0:
        w = cashless_atm_withdrawal(amount_cents, atm.increment_cents, atm.fee_cents)
        tender = msgspec.structs.replace(tender, amount_cents=w.withdrawal_cents, fee_cents=w.fee_cents)
    return tender


def _check_change_in_drawer(req: Request, change_cents: int) -> None:
    """The drawer must be able to give the change (drawer.change_refusal, checked again in the commit);
    asked before any card or bank app is charged, so a refusal never costs the customer a charge and a
    void (a cashless-ATM withdrawal's rounding comes back as change)."""
    store = req.store
    with store.read() as txn:
        drawer_id = open_drawer_id(txn, store, req.register_id)
        session = tget(txn, store, "drawers", text(drawer_id), DrawerSession) if drawer_id else None
    if (r := change_refusal(session, change_cents)) is not None:
        raise refuse(r)


async def _give_back(req: Request, terminal: Any, tender: Tender) -> bool:
    """Give an approved payment back after its sale failed; False when it is still taken. A card void the
    terminal did not confirm becomes a pending reversal (audited, counted, retried until confirmed)."""
    if tender.kind == "pay_by_bank":
        return bool(await bank.give_back(req, tender))
    if terminal is None:
        ok = False
    else:
        ok = await card.give_back(terminal, tender)
    if not ok:
        await reversals.record(
            req,
            reference=tender.reference,
            device_id=tender.terminal_id or getattr(terminal, "device_id", ""),
            amount_cents=tender.charged_cents,
            reason="the sale was not saved and the terminal did not confirm the void",
            register=req.register_id,
            staff=req.staff_id,
        )
    return ok


@HANDLERS.handles(p.Pay, timeout_s=card.PAY_WAIT_S)
async def pay(req: Request, msg: p.Pay) -> Any:
    ctx, actor = ctx_of(req.services), actor_of(req)
    sale = sale_of(actor)
    customer = need_customer(sale)
    cart = sale.cart
    if cart is None or not cart.lines:
        raise Refused("The cart is empty.", code="cart_empty")
    priced = price_of(ctx, cart, sale)
    device = paired_device(req.config, req.services.devices, req.register_id, "payment_terminal")
    terminal = ctx.terminals.get(device)
    tenders = [_tender(terminal, t.kind, t.amount_cents) for t in msg.tenders]
    settlement = settle(priced.total_cents, tenders)
    if isinstance(settlement, Refusal):
        raise refuse(settlement)
    if settlement.change_cents and any(t.kind in NEEDS_TERMINAL or t.kind == "pay_by_bank" for t in tenders):
        _check_change_in_drawer(req, settlement.change_cents)
    now = datetime.now(UTC)
    staff, cashier = req.staff_id, (req.session.name if req.session else req.staff_id)
    cart_for_commit = msgspec.structs.replace(cart, customer_id=customer.customer_id)
    cleared = RegisterSale(register_id=sale.register_id, parked=sale.parked)
    # cards and bank apps are charged before the commit; from the first approval on, ANY failure or
    # cancellation gives the money back (shielded), so no customer is charged without a sale
    charged: list[Tender] = []
    try:
        for i, t in enumerate(settlement.tenders):
            if t.kind in NEEDS_TERMINAL:
                tenders[i] = await card.take_card(actor, terminal, t, card.attempt_reference(cart.cart_id, i))
                charged.append(tenders[i])
            elif t.kind == "pay_by_bank":
                reference = card.attempt_reference(cart.cart_id, i)
                tenders[i] = await bank.take_bank(req, actor, t, reference, msg.tenders[i].phone)
                charged.append(tenders[i])
        if charged:
            settlement = msgspec.structs.replace(settlement, tenders=tuple(tenders))

        def fn(txn: lmdb.Transaction) -> Any:
            receipt = commit_sale(
                txn,
                ctx,
                register_id=req.register_id,
                staff=staff,
                cashier=cashier,
                cart=cart_for_commit,
                customer=customer,
                priced=priced,
                settlement=settlement,
                now=now,
                order_id=sale.order_id,
            )
            if sale.order_id:  # pickup of an online order: it completes with its sale, in this transaction
                complete_in_txn(
                    txn,
                    req,
                    sale.order_id,
                    customer,
                    receipt.receipt_number,
                    by=staff,
                    register=req.register_id,
                    now=now,
                )
            cleared.last_receipt_number = receipt.receipt_number
            cleared.notice = {
                "level": "info",
                "text": f"Sale {receipt.receipt_number} done. Change due {cents(receipt.change_cents)}.",
            }
            sale_writer(cleared, req.store)(txn)  # the sale row, and no open cart row any more
            return {
                "receipt_number": receipt.receipt_number,
                "total_cents": receipt.total_cents,
                "change_cents": receipt.change_cents,
            }

        result = await req.commit(fn, label="sale")
    except BaseException as exc:
        kept = [t for t in charged if not await _give_back(req, terminal, t)]
        if kept and isinstance(exc, Exception):
            # the customer's money is still taken: say so plainly, never "given back"
            refs = ", ".join(t.reference for t in kept)
            log.error("sale not saved (%s) and its payment NOT given back: %s", exc, refs)
            message = (
                "The sale could not be saved and its payment was NOT given back: "
                f"void it at the terminal (reference {refs}). The hub keeps trying too."
            )
            notice(sale, "error", message)
            actor.publish()
            raise HubError(message, code="payment_not_given_back") from exc
        if isinstance(exc, HubError):
            notice(sale, "error", exc.message)
            actor.publish()
        elif charged and isinstance(exc, Exception):
            # answered, not crashed: a crashed command is redelivered, which would charge the card again
            log.error("sale not saved after its payment was taken (%s); the payment was given back", exc)
            message = "The sale could not be saved, so its payment was given back. Try again."
            notice(sale, "error", message)
            actor.publish()
            raise HubError(message, code="sale_not_saved") from exc
        raise
    actor.set_sale(cleared)
    card.clear(actor)
    req.metrics.sales.labels(req.register_id).inc()
    actor.publish()
    for hook in req.services.after_sale:
        try:  # the sale is committed: a printer or a flag watcher failing must not turn it into an error
            hook(req.register_id, result["receipt_number"], settlement)
        except Exception:
            log.exception("after-sale hook %r failed for receipt %s", hook, result["receipt_number"])
    return result
