"""The picker actor: one per handheld. A handheld is paired and logged in like a register (it is one, for
the curbside sale); this actor adds what picking needs: a scan from the serial scanner paired to it goes
into the order it holds, as a pick, rather than into a cart. Decisions live in ``hub.domain.orders``."""

from __future__ import annotations

from typing import Any

from actors.register import RegisterActor
from hub.actor import Call
from hub.commands import Request
from hub.orders.protocol import PickScan
from hub.orders.views import held_by
from hub.sale.context import sale_of
from hub.sale.protocol import Scan


class PickerActor(RegisterActor):
    async def _handle(self, call: Call) -> None:
        req: Request = call.payload
        msg: Any = req.msg
        if isinstance(msg, Scan) and not sale_of(self).order_id:
            order_id = held_by(self.parts, self.id)
            if order_id:
                req.msg = PickScan(id=msg.id, order_id=order_id, data=msg.data)
        await super()._handle(call)
