"""A receipt looked up at the register (scanned or typed), for a return or a reprint."""

from __future__ import annotations

from typing import Any

from hub.access import HandlerTable
from hub.backoffice.records import returns_of
from hub.commands import Request
from hub.domain.receipt import SaleRecord
from hub.errors import NotFound
from hub.sale import protocol as p
from hub.store.keys import u64

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


@HANDLERS.handles(p.LookUpReceipt, idempotent=False)
async def look_up_receipt(req: Request, msg: p.LookUpReceipt) -> Any:
    record = req.hub.store.get("sales", u64(msg.receipt_number), SaleRecord)
    if record is None:
        raise NotFound(f"There is no sale {msg.receipt_number}.")
    back: dict[int, int] = {}
    for r in returns_of(req.hub.store, msg.receipt_number):
        for rl in r.lines:
            back[rl.line_id] = back.get(rl.line_id, 0) + rl.quantity
    receipt = record.receipt
    return {
        "receipt_number": receipt.receipt_number,
        "sold_at": receipt.sold_at_local[:16].replace("T", " "),
        "register": receipt.register_id,
        "total_cents": receipt.total_cents,
        "voided": record.voided,
        "paid_by_card": any(t.kind != "cash" for t in receipt.tenders),
        "lines": [
            {
                "line": ln.line_id,
                "product": ln.name,
                "tag": ln.package_tag,
                "sold_by": ln.sold_by,
                "quantity": ln.quantity,
                "weight_mg": ln.weight_mg,
                "returned": back.get(ln.line_id, 0),
                "total_cents": ln.total_cents,
            }
            for ln in receipt.lines
        ],
    }
