"""Voiding a sale: the intent first, card and bank payments given back, then the void committed.

The commit gives back the stock, the allotment and the drawer's cash and tells the state through the
outbox.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec

from hub import audit
from hub.access import HandlerTable
from hub.commands import Request
from hub.domain.drawer import DrawerSession
from hub.domain.give_back import VoidIntent
from hub.domain.receipt import SaleRecord, void_refusal
from hub.domain.sale_plan import SaleRefused, plan_void
from hub.domain.tender import NEEDS_TERMINAL, Tender
from hub.errors import Conflict, NotFound, StorageError
from hub.sale import bank
from hub.sale import inventory as inv
from hub.sale import protocol as p
from hub.sale.approvals import approve
from hub.sale.context import Refused, actor_of, ctx_of, refuse
from hub.sale.drawer import open_drawer_id, put_drawer
from hub.state_channel import outbox_store
from hub.store.env import encode, put, tget
from hub.store.keys import micros, text, u64
from hub.store.layout import LEDGER, VOID_INTENTS, VOIDS
from hub.store.writer import as_storage_error

if TYPE_CHECKING:
    pass

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()

log = logging.getLogger("hub.sale")


async def _record_void_intent(req: Request, record: SaleRecord, now: datetime) -> None:
    ctx, store = ctx_of(req.services), req.store
    if (refusal := void_refusal(record, ctx.today(record.receipt.sold_at), ctx.today(now))) is not None:
        raise refuse(refusal)
    refs = tuple(t.reference for t in record.receipt.tenders if t.reference)
    if not refs:
        return  # nothing to give back outside the void's own commit
    intent = VoidIntent(
        receipt_number=record.receipt.receipt_number,
        references=refs,
        started_at=now,
        staff=req.staff_id,
        register=req.register_id,
    )

    def fn(txn: lmdb.Transaction) -> None:
        VOID_INTENTS.put(txn, store, intent.receipt_number, intent)
        audit.append(
            txn,
            store,
            "void_started",
            staff=req.staff_id,
            register=req.register_id,
            detail={"receipt": intent.receipt_number, "references": list(refs)},
        )

    await req.writer.write(fn, label="void-intent")


async def _void_payments(
    req: Request, record: SaleRecord, now: datetime, back: list[Tender]
) -> tuple[Tender, ...]:
    """Before a sale is voided, its card and bank payments are taken back at the terminal or the provider
    (``back``: those given back so far); if one of them refuses, the void is refused."""
    ctx = ctx_of(req.services)
    if (refusal := void_refusal(record, ctx.today(record.receipt.sold_at), ctx.today(now))) is not None:
        raise refuse(refusal)
    for t in record.receipt.tenders:
        if t.kind in NEEDS_TERMINAL and t.reference:
            terminal = ctx.terminals.get(t.terminal_id)
            if terminal is None or not await terminal.void(t.reference, t.charged_cents):
                raise Refused(
                    "The card terminal did not void this sale's card payment: nothing was changed. "
                    "Try again when the terminal is online, or return the items instead.",
                    code="card_void_failed",
                )
            back.append(t)
        elif t.kind == "pay_by_bank" and t.reference:
            if not await bank.give_back(req, t):
                raise Refused(
                    "The pay-by-bank provider did not reverse this sale's payment: nothing was changed.",
                    code="bank_void_failed",
                )
            back.append(t)
    return tuple(back)


@HANDLERS.handles(p.VoidSale)
async def void_sale(req: Request, msg: p.VoidSale) -> Any:
    ctx = ctx_of(req.services)
    store = req.store
    record = store.get("sales", u64(msg.receipt_number), SaleRecord)
    if record is None:
        raise NotFound(f"There is no sale {msg.receipt_number}.")
    override = await approve(req, msg.approval, "void", detail={"receipt": msg.receipt_number})
    now = datetime.now(UTC)
    # 1. the intent first, durably: if the payments are given back and the final commit then fails, the
    # store still says this sale's void is under way (and a retry re-checks each card void at the terminal,
    # which answers "voided already" as done: drivers/spin.py's void is idempotent)
    await _record_void_intent(req, record, now)
    # 2. the money back at the terminal / the provider (refused: nothing changed, the intent withdrawn)
    returned: list[Tender] = []
    try:
        given_back = await _void_payments(req, record, now, returned)
    except Refused:
        if returned:  # a split payment partly given back: the intent stays, the retry re-checks each one
            raise
        await req.writer.write(
            lambda txn: VOID_INTENTS.delete(txn, store, msg.receipt_number),
            label="void-intent",
        )
        raise

    # 3. the void itself, the intent cleared in the same commit: the core decides, this applies it
    def fn(txn: lmdb.Transaction) -> Any:
        rec = tget(txn, store, "sales", u64(msg.receipt_number), SaleRecord)
        assert rec is not None
        VOID_INTENTS.delete(txn, store, msg.receipt_number)
        r = rec.receipt
        drawer_id = open_drawer_id(txn, store, req.register_id)
        plan = plan_void(
            rec,
            packages={ln.package_tag: inv.package_in_txn(txn, store, ln.package_tag) for ln in r.lines},
            given_back=given_back,
            drawer_id=drawer_id,
            drawer=tget(txn, store, "drawers", text(drawer_id), DrawerSession) if drawer_id else None,
            override=override,
            licence=req.config.store.licence,
            register_id=req.register_id,
            staff=req.staff_id,
            now=now,
            sold_on=ctx.today(r.sold_at),
            today=ctx.today(now),
        )
        if isinstance(plan, SaleRefused):
            refusal = plan.refusal
            raise Conflict(refusal.message, code=refusal.code) if plan.stock_changed else refuse(refusal)
        for pkg in plan.packages:
            inv.put_package(txn, store, pkg)
        ledger_key = (rec.customer_id, micros(r.sold_at), r.receipt_number)
        entry = LEDGER.get(txn, store, ledger_key)
        if entry is not None:  # the allotment is given back (the limits caches follow the ledger's writes)
            LEDGER.put(txn, store, ledger_key, msgspec.structs.replace(entry, voided=True))
        put(txn, store, "sales", u64(r.receipt_number), plan.record)
        VOIDS.put(txn, store, r.receipt_number, plan.void)
        if plan.drawer is not None:
            put_drawer(txn, store, plan.drawer)  # the one way a drawer session is stored
        outbox_store.add(  # the state's sender wakes when this commits
            txn,
            store,
            kind="void",
            licence=req.config.store.licence,
            key=plan.outbox_key,
            payload=encode(plan.state_void),
            labels=plan.state_void.package_labels,
            now=now,
        )
        for hook in ctx.in_void_txn:
            hook(txn, ctx, receipt=r, customer_id=rec.customer_id, staff=req.staff_id, now=now)
        audit.append(
            txn, store, "void", staff=req.staff_id, register=req.register_id, detail=plan.audit_detail
        )
        cash = plan.cash_back_cents
        return {
            "receipt_number": r.receipt_number,
            "refund_cents": max(cash, 0),
            "change_back_cents": max(-cash, 0),  # cash the customer returns (cashless-ATM change)
        }

    try:
        result = await req.commit(fn, label="void")
    except StorageError as exc:  # disk or map full, or the disk failed
        raise _void_not_saved(exc, given_back) from exc
    except (lmdb.Error, OSError) as exc:
        # answered, not crashed: a crashed command is redelivered and then quarantined
        raise _void_not_saved(as_storage_error(exc), given_back) from exc
    actor_of(req).publish()
    return result


def _void_not_saved(err: StorageError, given_back: tuple[Tender, ...]) -> StorageError:
    """The void's final commit failed: its intent is saved and the terminal's void is idempotent, so
    voiding the sale again (once the store writes again) finishes it."""
    log.error("void not saved (%s); its intent is kept for the retry", err.__cause__ or err)
    money = " Its card payments are given back already." if given_back else ""
    message = f"The void could not be saved ({err.message}).{money} Void the sale again to finish it."
    out = StorageError(message, code=err.code)
    out.__cause__ = err
    return out
