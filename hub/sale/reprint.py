"""The register's Reprint button: an earlier receipt printed again, marked as a copy, and shown."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import trio

from hub import audit
from hub.access import HandlerTable
from hub.commands import Request
from hub.devices import receipt_document
from hub.domain import devices as dev
from hub.domain.receipt import SaleRecord, render_receipt_html
from hub.errors import NotFound
from hub.sale import protocol as p
from hub.store.keys import u64

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()

log = logging.getLogger("hub.sale.reprint")


def _printer_of(req: Request) -> tuple[str, Any]:
    """This register's receipt printer and its job queue, if one is connected."""
    devices = req.hub.services.devices
    if devices is None:
        return "", None
    reg = req.hub.config.register(req.register_id)
    printer = (reg.printer if reg else "") or next(
        (d for d, r in devices.paired.items() if r == req.register_id and devices.kinds[d] == "printer"), ""
    )
    return printer, devices.inboxes.get(printer)


@HANDLERS.handles(p.ReprintReceipt)
async def reprint_receipt(req: Request, msg: p.ReprintReceipt) -> Any:
    """Audited; answered with the receipt so the screen shows it even without a printer. The reply is
    stored, so a retried id prints nothing twice."""
    hub = req.hub
    rec = hub.store.get("sales", u64(msg.receipt_number), SaleRecord)
    if rec is None:
        raise NotFound(f"There is no sale {msg.receipt_number}.", field="receipt_number")
    printer, inbox = _printer_of(req)
    printer = printer if inbox is not None else ""

    def fn(txn: Any) -> Any:
        audit.append(
            txn,
            hub.store,
            "receipt_reprinted",
            staff=req.staff_id,
            register=req.register_id,
            detail={"receipt": msg.receipt_number, "printer": printer},
        )
        return {
            "number": msg.receipt_number,
            "html": render_receipt_html(rec.receipt),
            "printed": inbox is not None,
            "printer": printer,
        }

    result = await req.commit(fn)
    if inbox is not None:
        doc = receipt_document(rec.receipt, open_drawer=False)
        doc = msgspec.structs.replace(doc, header_lines=["*** COPY ***", *doc.header_lines])
        try:
            inbox.send_nowait(dev.PrintReceipt(job_id=f"reprint-{msg.id}", document=doc))
        except trio.WouldBlock:
            log.warning("printer %s queue full; copy of receipt %d not printed", printer, msg.receipt_number)
    return result
