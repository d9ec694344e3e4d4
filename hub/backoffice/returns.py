"""Customer returns (``return_items``): refund, quarantine, drawer, outbox and audit in one transaction.

The returned product never goes back on sale: the package's sellable quantity is left as it is and the units
are held as ``ReturnedStock`` (quarantined) until they are destroyed with a waste adjustment. The state hears
of the return through the outbox (Metrc has no return call: the receipt is rewritten, see
``hub.domain.state_payloads.sale_after_return``; each rewrite carries the sale minus every return so far). A manager approves every return with their PIN.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import lmdb

from hub import audit
from hub.access import HandlerTable
from hub.backoffice.records import returns_of, scan_prefix
from hub.commands import Request
from hub.domain.catalog import Refusal
from hub.domain.drawer import DrawerEvent
from hub.domain.outbox import OutboxEntry
from hub.domain.receipt import Receipt, ReturnedStock, ReturnRecord, SaleRecord, return_lines
from hub.domain.state_payloads import StateReturn, StateReturnLine, StateSale, sale_key, state_sale
from hub.domain.tender import Tender
from hub.errors import BadRequest, NotFound
from hub.sale import protocol as p
from hub.sale.approvals import approve
from hub.sale.card import attempt_reference
from hub.sale.context import Refused, ctx_of, refuse
from hub.sale.drawer import open_drawer_id, record_drawer_event
from hub.state_channel import outbox_store
from hub.store.env import decode, encode
from hub.store.keys import u64
from hub.store.layout import RETURN_SEQ, RETURNED_STOCK, RETURNS, RETURNS_BY_RECEIPT

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


def _original_state_sale(
    txn: lmdb.Transaction, store: Any, licence: str, receipt: Receipt, tz: str
) -> StateSale:
    """The sale as it was reported (from its outbox entry), else rebuilt from the receipt."""
    key = sale_key(licence, receipt.receipt_number)
    for _, raw in scan_prefix(txn, store, "outbox", b""):
        entry = decode(raw, OutboxEntry)
        if entry.kind == "sale" and entry.idempotency_key == key:
            return decode(entry.payload, StateSale)
    return state_sale(receipt, licence=licence, time_zone=tz, terminal_id=receipt.register_id)


def _earlier_returns(txn: lmdb.Transaction, store: Any, key: str) -> tuple[StateReturnLine, ...]:
    """What the sale's earlier returns reported, in order: a Metrc PUT replaces the whole receipt, so the
    next one must carry the sale minus all of them (``sale_after_return``)."""
    prefix = f"return-{key}-"
    out: list[StateReturnLine] = []
    for _, raw in scan_prefix(txn, store, "outbox", b""):
        entry = decode(raw, OutboxEntry)
        if entry.kind == "return" and entry.idempotency_key.startswith(prefix):
            out += decode(entry.payload, StateReturn).returned
    return tuple(out)


@HANDLERS.handles(p.ReturnItems)
async def return_items(req: Request, msg: p.ReturnItems) -> Any:
    hub = req.hub
    store = hub.store
    record = store.get("sales", u64(msg.receipt_number), SaleRecord)
    if record is None:
        raise NotFound(f"There is no sale {msg.receipt_number}.")
    if record.voided:
        raise Refused(f"Sale {msg.receipt_number} was voided: nothing to return.", code="voided")
    try:
        quantities = {int(k): v for k, v in msg.lines.items()}
    except ValueError:
        raise BadRequest("Lines are given by their receipt line number.", field="lines") from None
    receipt = record.receipt
    # a weighed line comes back whole (the customer cannot return part of a weighed bag)
    quantities = {
        k: (1 if any(ln.line_id == k and ln.sold_by == "weight" for ln in receipt.lines) else v)
        for k, v in quantities.items()
    }
    earlier: dict[int, int] = {}
    for r in returns_of(store, msg.receipt_number):
        for rl in r.lines:
            earlier[rl.line_id] = earlier.get(rl.line_id, 0) + rl.quantity
    for ln in receipt.lines:
        if ln.line_id in quantities and quantities[ln.line_id] + earlier.get(ln.line_id, 0) > ln.quantity:
            raise Refused(
                f"Line {ln.line_id} sold {ln.quantity} and {earlier.get(ln.line_id, 0)} already came back.",
                code="already_returned",
            )
    lines = return_lines(receipt, quantities)
    if isinstance(lines, Refusal):
        raise refuse(lines)
    refund = sum(ln.refund_cents for ln in lines)
    card = [t for t in receipt.tenders if t.kind in ("debit", "cashless_atm")]
    others = [t for t in receipt.tenders if t.kind not in ("cash", "debit", "cashless_atm")]
    if msg.refund_kind == "original" and others:
        raise Refused(
            "This sale was paid by bank app: refund it in cash or in the provider's portal.",
            code="card_refund",
        )
    if msg.refund_kind == "original" and card and card[0].terminal_id not in ctx_of(hub).terminals:
        raise Refused(
            "The card terminal of this sale is not connected: refund it in cash.", code="card_refund"
        )
    override = await approve(
        req, msg.approval, "return", detail={"receipt": msg.receipt_number, "refund_cents": refund}
    )
    now = datetime.now(UTC)
    licence = hub.config.store.licence
    tz = hub.config.facility_time_zone  # the state facility's zone (the hub refuses to start on a mismatch)
    refund_tender = Tender(kind="cash", amount_cents=refund)
    if msg.refund_kind == "original" and card:
        # a return to the card is its own terminal transaction (SPIn Return: "an independent operation",
        # the customer presents the card again), with its own reference
        terminal = ctx_of(hub).terminals[card[0].terminal_id]
        reference = attempt_reference(f"ret{receipt.receipt_number}", 0)
        outcome = await terminal.refund(refund, reference)
        if outcome.status != "approved":
            raise Refused(
                f"The card refund did not go through ({outcome.message or outcome.status}): nothing was "
                "refunded. Try again or refund in cash.",
                code="card_refund_failed",
            )
        refund_tender = Tender(
            kind=card[0].kind,
            amount_cents=refund,
            reference=reference,
            auth_code=outcome.approval_code,
            terminal_id=card[0].terminal_id,
            card_last4=outcome.card_last4,
        )

    def fn(txn: lmdb.Transaction) -> Any:
        number = (RETURN_SEQ.get(txn, store) or 0) + 1
        RETURN_SEQ.put(txn, store, number)
        drawer_id = open_drawer_id(txn, store, req.register_id)
        if not drawer_id and refund_tender.kind == "cash":
            raise Refused("No open drawer on this register: the cash refund needs one.", code="no_drawer")
        ret = ReturnRecord(
            return_number=number,
            original_receipt_number=receipt.receipt_number,
            register_id=req.register_id,
            returned_at=now,
            lines=lines,
            refund_cents=refund,
            refund_tenders=(refund_tender,),
            manager_id=override.manager_id,
            reason=override.reason,
            drawer_session_id=drawer_id,
            customer_id=record.customer_id,
        )
        RETURNS.put(txn, store, number, ret)
        RETURNS_BY_RECEIPT.put(txn, store, (receipt.receipt_number, number), None)
        # quarantine: held apart, never added back to the sellable package
        for ln in lines:
            stock = ReturnedStock(
                return_number=number,
                receipt_number=receipt.receipt_number,
                tag=ln.package_tag,
                product_id=ln.product_id,
                name=ln.name,
                units=0 if _weighed(receipt, ln.line_id) else ln.quantity,
                weight_mg=ln.weight_mg if _weighed(receipt, ln.line_id) else 0,
                at=now,
            )
            RETURNED_STOCK.put(txn, store, (number, ln.package_tag), stock)
        if refund_tender.kind == "cash":
            record_drawer_event(
                txn,
                store,
                drawer_id,
                DrawerEvent(
                    kind="cash_refund",
                    amount_cents=refund,
                    at=now,
                    by=req.staff_id,
                    reason=f"return: {override.reason}",
                    manager_id=override.manager_id,
                    override_ref=override.reference,
                    receipt_number=receipt.receipt_number,
                ),
            )
        key = sale_key(licence, receipt.receipt_number)
        state_return = StateReturn(
            sale=_original_state_sale(txn, store, licence, receipt, tz),
            returned=tuple(
                StateReturnLine(
                    package_label=ln.package_tag,
                    quantity_mg=ln.weight_mg if _weighed(receipt, ln.line_id) else 0,
                    units=0 if _weighed(receipt, ln.line_id) else ln.quantity,
                    refund_cents=ln.pretax_cents,  # the state's figure is the pre-tax price
                )
                for ln in lines
            ),
            returned_at=now,
            earlier=_earlier_returns(txn, store, key),
        )
        labels = tuple(sorted({ln.package_tag for ln in lines}))
        outbox_store.add(
            txn,
            store,
            kind="return",
            licence=licence,
            key=f"return-{key}-{number}",
            payload=encode(state_return),
            labels=labels,
            now=now,
        )
        audit.append(
            txn,
            store,
            "return",
            staff=req.staff_id,
            register=req.register_id,
            detail={
                "return": number,
                "receipt": receipt.receipt_number,
                "refund_cents": refund,
                "manager": override.manager_id,
                "reason": override.reason,
                "packages": list(labels),
                "quarantined": True,
            },
        )
        return {"return_number": number, "refund_cents": refund, "quarantined": list(labels)}

    result = await req.commit(fn, label="return")
    actor = hub.registers.get(req.register_id)
    if actor is not None:
        actor.publish()
    return result


def _weighed(receipt: Receipt, line_id: int) -> bool:
    return any(ln.line_id == line_id and ln.sold_by == "weight" for ln in receipt.lines)


__all__ = ["return_items"]
