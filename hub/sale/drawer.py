"""The register's cash drawer in the store: its open session, opening one, recording cash movements.

A movement is recorded inside the caller's transaction; the core (hub/domain/drawer.py) decides it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lmdb

from hub import audit, auth
from hub.access import HandlerTable
from hub.commands import Request
from hub.domain.catalog import Refusal
from hub.domain.drawer import DrawerEvent, DrawerSession, fold_cash_sales, may_open, open_session
from hub.domain.drawer import record as drawer_record
from hub.errors import BadRequest, Conflict, Forbidden
from hub.sale import protocol as p
from hub.sale.approvals import staff_by_pin
from hub.sale.context import refuse
from hub.store.env import put, tget
from hub.store.keys import text
from hub.store.layout import DRAWER_SALES, OPEN_DRAWERS

if TYPE_CHECKING:
    pass

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


def open_drawer_id(txn: lmdb.Transaction, store: Any, register_id: str) -> str:
    return OPEN_DRAWERS.get(txn, store, register_id) or ""


def put_drawer(txn: lmdb.Transaction, store: Any, session: DrawerSession) -> None:
    """Store a drawer session: the cash sales recorded on it go to rows of their own (DRAWER_SALES) and
    into its running totals, so the session's record stays the same small size however long the day."""
    folded, sales = fold_cash_sales(session)
    for n, event in enumerate(sales, start=session.folded_sales + 1):
        DRAWER_SALES.put(txn, store, (session.session_id, n), event)
    put(txn, store, "drawers", text(session.session_id), folded)


def record_drawer_event(
    txn: lmdb.Transaction, store: Any, session_id: str, event: DrawerEvent
) -> DrawerSession:
    """Record a cash movement on a drawer session inside the caller's transaction (the core decides)."""
    session = tget(txn, store, "drawers", text(session_id), DrawerSession)
    if session is None:
        raise Conflict(f"The drawer session {session_id} has no record.")
    updated = drawer_record(session, event)
    if isinstance(updated, Refusal):
        raise refuse(updated)
    put_drawer(txn, store, updated)
    return updated


async def open_drawer_session(
    req: Request, register_id: str, counted: dict[str, int], witness: auth.StaffMember
) -> dict[str, Any]:
    """Open a register's drawer with a counted float and a witness (the core checks one open drawer per
    register and a second person); audited; the reply is stored with it."""
    now = datetime.now(UTC)
    session_id = f"D-{register_id}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"

    def fn(txn: lmdb.Transaction) -> Any:
        store = req.store
        s = open_session(
            session_id,
            register_id,
            counted,
            counted_by=req.staff_id,
            witness=witness.id,
            at=now,
            open_session_on_register=open_drawer_id(txn, store, register_id),
        )
        if isinstance(s, Refusal):
            raise refuse(s)
        put(txn, store, "drawers", text(session_id), s)
        OPEN_DRAWERS.put(txn, store, register_id, session_id)
        audit.append(
            txn,
            store,
            "drawer_opened",
            staff=req.staff_id,
            register=register_id,
            detail={"session": session_id, "float_cents": s.opening.count.total_cents, "witness": witness.id},
        )
        return {
            "session_id": session_id,
            "register_id": register_id,
            "float_cents": s.opening.count.total_cents,
        }

    result: dict[str, Any] = await req.commit(fn)
    actor = req.registers.get(register_id)
    if actor is not None:
        actor.publish()
    return result


@HANDLERS.handles(p.OpenDrawer)
async def open_drawer(req: Request, msg: p.OpenDrawer) -> Any:
    if msg.witness is None or msg.witness_pin is None:
        raise BadRequest("Opening a drawer needs a witness who enters their PIN.", field="witness")
    member = await staff_by_pin(req, msg.witness, msg.witness_pin, "witness")
    if (r := may_open(req.role, member.role)) is not None:
        raise Forbidden(r.message, code="forbidden")
    return await open_drawer_session(req, req.register_id, msg.counted, member)
