"""Drawer commands: movements with a manager's approval, the blind count, sign-off, deposit, hand-over, and
opening a register's drawer from the back office. Every decision is the drawer core's
(``hub.domain.drawer``); this module reads and writes the session inside one writer transaction.

The expected cash of an open drawer never leaves the hub: replies before the blind count carry the session
id and what was recorded, nothing else; the count's reply is the first to carry expected and variance.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import lmdb
import msgspec

from hub import audit
from hub.access import HandlerTable
from hub.backoffice import protocol as bp
from hub.commands import Request
from hub.domain.catalog import Refusal
from hub.domain.drawer import (
    CloseSummary,
    DrawerEvent,
    DrawerSession,
    close_summary,
    hand_over,
    record,
    record_deposit,
    sign_off,
    submit_blind_count,
)
from hub.errors import BadRequest, NotFound
from hub.sale.approvals import approve, staff_by_pin
from hub.sale.context import Refused, refuse
from hub.sale.drawer import open_drawer_id, open_drawer_session
from hub.store.env import put, tget
from hub.store.keys import text
from hub.store.layout import OPEN_DRAWERS

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


def target_register(req: Request, register_id: str) -> str:
    """This register, or (from the back office, for a manager) the one named."""
    reg = register_id or req.register_id
    if reg not in req.registers:
        raise BadRequest(f"There is no register {reg!r} in this store.", field="register_id")
    if reg != req.register_id:
        req.require("manager", "Working on another register's drawer")
    return reg


def _publish(req: Request, register_id: str) -> None:
    actor = req.registers.get(register_id)
    if actor is not None:
        actor.publish()


def _open_session(txn: lmdb.Transaction, req: Request, register_id: str) -> DrawerSession:
    store = req.store
    sid = open_drawer_id(txn, store, register_id)
    session = tget(txn, store, "drawers", text(sid), DrawerSession) if sid else None
    if session is None:
        raise Refused(f"Register {register_id} has no open drawer.", code="no_drawer")
    return session


def _session(txn: lmdb.Transaction, req: Request, session_id: str) -> DrawerSession:
    session = tget(txn, req.store, "drawers", text(session_id), DrawerSession)
    if session is None:
        raise NotFound(f"There is no drawer session {session_id}.")
    return session


def _ok(result: DrawerSession | Refusal) -> DrawerSession:
    if isinstance(result, Refusal):
        raise refuse(result)
    return result


def summary_dict(summary: CloseSummary) -> dict[str, Any]:
    return msgspec.to_builtins(summary)  # type: ignore[no-any-return]


@HANDLERS.handles(bp.OfficeOpenDrawer, role="manager")
async def office_open_drawer(req: Request, msg: bp.OfficeOpenDrawer) -> Any:
    reg = target_register(req, msg.register_id)
    member = await staff_by_pin(req, msg.witness, msg.witness_pin, "witness")
    result = await open_drawer_session(req, reg, msg.counted, member)
    _publish(req, reg)
    return result


@HANDLERS.handles(bp.DrawerMovement)
async def drawer_movement(req: Request, msg: bp.DrawerMovement) -> Any:
    reg = target_register(req, msg.register_id)
    what = msg.kind.replace("_", "-")
    override = await approve(
        req, msg.approval, what, detail={"register": reg, "amount_cents": msg.amount_cents}
    )
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        store = req.store
        session = _open_session(txn, req, reg)
        event = DrawerEvent(
            kind=msg.kind,
            amount_cents=msg.amount_cents,
            at=now,
            by=req.staff_id,
            reason=msg.reason,
            manager_id=override.manager_id,
            override_ref=override.reference,
            bag_number=msg.bag_number,
        )
        updated = _ok(record(session, event))
        put(txn, store, "drawers", text(session.session_id), updated)
        audit.append(
            txn,
            store,
            f"drawer_{msg.kind}",
            staff=req.staff_id,
            register=reg,
            detail={
                "session": session.session_id,
                "amount_cents": msg.amount_cents,
                "reason": msg.reason,
                "manager": override.manager_id,
                "override": override.reference,
                "bag": msg.bag_number,
            },
        )
        # no running balance in the reply: the expected cash stays unknown until the blind count
        return {"session_id": session.session_id, "kind": msg.kind, "amount_cents": msg.amount_cents}

    result = await req.commit(fn)
    _publish(req, reg)
    return result


@HANDLERS.handles(bp.BlindCount)
async def blind_count(req: Request, msg: bp.BlindCount) -> Any:
    reg = target_register(req, msg.register_id)
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        store = req.store
        session = _open_session(txn, req, reg)
        counted = _ok(
            submit_blind_count(session, msg.counted, counted_by=req.staff_id, witness=msg.witness, at=now)
        )
        put(txn, store, "drawers", text(session.session_id), counted)
        OPEN_DRAWERS.delete(txn, store, reg)  # no more cash on this drawer
        summary = close_summary(counted)
        assert isinstance(summary, CloseSummary)
        audit.append(
            txn,
            store,
            "drawer_counted",
            staff=req.staff_id,
            register=reg,
            detail={
                "session": session.session_id,
                "counted_cents": summary.counted_cents,
                "expected_cents": summary.expected_cents,
                "variance_cents": summary.variance_cents,
                "witness": msg.witness,
            },
        )
        return summary_dict(summary)

    result = await req.commit(fn)
    _publish(req, reg)
    return result


@HANDLERS.handles(bp.SignOffDrawer)
async def sign_off_drawer(req: Request, msg: bp.SignOffDrawer) -> Any:
    if msg.approval is not None:
        override = await approve(req, msg.approval, "drawer variance", detail={"session": msg.session_id})
        manager, reference = override.manager_id, override.reference
    else:
        req.require("manager", "Signing off a drawer variance")
        manager, reference = req.staff_id, ""
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        store = req.store
        session = _session(txn, req, msg.session_id)
        signed = _ok(sign_off(session, manager_id=manager, note=msg.note, at=now))
        put(txn, store, "drawers", text(session.session_id), signed)
        summary = close_summary(signed)
        assert isinstance(summary, CloseSummary)
        audit.append(
            txn,
            store,
            "drawer_signed_off",
            staff=req.staff_id,
            register=session.register_id,
            detail={
                "session": session.session_id,
                "manager": manager,
                "variance_cents": summary.variance_cents,
                "note": signed.sign_off.note if signed.sign_off else "",
                "override": reference,
            },
        )
        return summary_dict(summary)

    return await req.commit(fn)


@HANDLERS.handles(bp.RecordDeposit, role="manager")
async def deposit(req: Request, msg: bp.RecordDeposit) -> Any:
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        store = req.store
        session = _session(txn, req, msg.session_id)
        done = _ok(
            record_deposit(
                session,
                bag_number=msg.bag_number,
                amount_cents=msg.amount_cents,
                sealed_by=req.staff_id,
                witness=msg.witness,
                at=now,
            )
        )
        put(txn, store, "drawers", text(session.session_id), done)
        audit.append(
            txn,
            store,
            "drawer_deposit",
            staff=req.staff_id,
            register=session.register_id,
            detail={"session": session.session_id, "bag": msg.bag_number, "amount_cents": msg.amount_cents},
        )
        return {"session_id": session.session_id, "bag_number": msg.bag_number}

    return await req.commit(fn)


@HANDLERS.handles(bp.HandOverDrawer)
async def hand_over_drawer(req: Request, msg: bp.HandOverDrawer) -> Any:
    reg = target_register(req, msg.register_id)
    member = await staff_by_pin(req, msg.incoming, msg.incoming_pin, "incoming")
    now = datetime.now(UTC)
    new_id = f"D-{reg}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"

    def fn(txn: lmdb.Transaction) -> Any:
        store = req.store
        session = _open_session(txn, req, reg)
        out = hand_over(
            session, msg.counted, outgoing=req.staff_id, incoming=member.id, new_session_id=new_id, at=now
        )
        if isinstance(out, Refusal):
            raise refuse(out)
        old, new = out
        put(txn, store, "drawers", text(old.session_id), old)
        put(txn, store, "drawers", text(new.session_id), new)
        OPEN_DRAWERS.put(txn, store, reg, new.session_id)
        summary = close_summary(old)
        assert isinstance(summary, CloseSummary)
        audit.append(
            txn,
            store,
            "drawer_handed_over",
            staff=req.staff_id,
            register=reg,
            detail={
                "from": old.session_id,
                "to": new.session_id,
                "incoming": member.id,
                "counted_cents": summary.counted_cents,
                "variance_cents": summary.variance_cents,
            },
        )
        return {"closed": summary_dict(summary), "session_id": new.session_id}

    result = await req.commit(fn)
    _publish(req, reg)
    return result


def drawer_row(session: DrawerSession) -> dict[str, Any]:
    """A drawer for the back-office list: the expected figure only once the blind count is in."""
    row: dict[str, Any] = {
        "session_id": session.session_id,
        "register_id": session.register_id,
        "status": session.status,
        "opened_at": session.opening.at.isoformat(),
        "opened_by": session.opening.counted_by,
        "witness": session.opening.witness,
        "float_cents": session.opening.count.total_cents,
        "events": [
            {
                "kind": e.kind,
                "amount_cents": e.amount_cents,
                "at": e.at.isoformat(),
                "by": e.by,
                "reason": e.reason,
                "manager": e.manager_id,
                "receipt": e.receipt_number or None,
                "bag": e.bag_number,
            }
            for e in session.events
            if e.kind not in ("cash_sale",)
        ],
        "cash_sales": session.cash_sales,
        "handed_over_to": session.handed_over_to,
        "handed_over_from": session.handed_over_from,
        "deposit": msgspec.to_builtins(session.deposit) if session.deposit else None,
        "summary": None,
    }
    summary = close_summary(session)
    if isinstance(summary, CloseSummary):
        row["summary"] = summary_dict(summary)
    return row
