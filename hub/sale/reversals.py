"""Pending card reversals: money taken at a terminal that the hub could not give back yet.

A reversal is pending when a charge must be voided and the terminal did not confirm the void: the sale
failed to commit and ``give_back`` failed, a partial approval whose void failed (``Unresolved``), or an
approval that arrived after the hub stopped waiting for it. Each one is kept durably (table
``pending_reversals``, hub/store/layout.py), audited (``card_reversal_pending``), counted
(``storehub_card_reversals_failed_total``, alert CardReversalFailed, ops/runbooks/card-reversals.md) and
retried by ``run`` until the terminal confirms the void (audited ``card_reversal_done``). The void is
idempotent (drivers/spin.py re-checks a refused void with Status), so a retry after a void that did land
but was not confirmed ends the record instead of failing for ever.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import lmdb
import msgspec
import trio

from hub import audit
from hub.domain.give_back import PendingReversal
from hub.store.layout import PENDING_REVERSALS

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.domain.devices import PaymentResult

log = logging.getLogger("hub.sale.reversals")
RETRY_S = 30.0
VOID_WAIT_S = 120.0
RECORD_WAIT_S = 15.0


async def record(
    hub: Hub,
    *,
    reference: str,
    device_id: str,
    amount_cents: int,
    reason: str,
    register: str = "",
    staff: str = "",
    failed: bool = True,
) -> None:
    """Keep a reversal to make, audited; ``failed``: a void the terminal did not confirm (counted, and
    logged as an error). Shielded: it runs while a cancelled ``pay`` unwinds. A store that cannot write
    leaves the log line and the metric."""
    if failed:
        hub.metrics.card_reversals_failed.inc()
    log.error(
        "card payment %s (%s cents on %s) %s (%s): giving it back",
        reference,
        amount_cents,
        device_id,
        "NOT given back" if failed else "to give back",
        reason,
    )
    rev = PendingReversal(
        reference=reference,
        device_id=device_id,
        amount_cents=amount_cents,
        reason=reason,
        created_at=datetime.now(UTC),
        register=register,
    )
    store = hub.store

    def fn(txn: lmdb.Transaction) -> None:
        if not PENDING_REVERSALS.has(txn, store, reference):
            PENDING_REVERSALS.put(txn, store, reference, rev)
        audit.append(
            txn,
            store,
            "card_reversal_pending" if failed else "card_charge_orphaned",
            staff=staff,
            register=register,
            detail={
                "reference": reference,
                "device": device_id,
                "amount_cents": amount_cents,
                "reason": reason,
            },
        )

    with trio.CancelScope(shield=True), trio.move_on_after(RECORD_WAIT_S):
        try:
            await hub.writer.write(fn, label="card-reversal")
        except Exception:
            log.exception("could not record the pending reversal of %s", reference)
    refresh_gauge(hub)


def pending(hub: Hub) -> list[PendingReversal]:
    return PENDING_REVERSALS.all(hub.store)


def refresh_gauge(hub: Hub) -> None:
    try:
        hub.metrics.card_reversals_pending.set(len(pending(hub)))
    except lmdb.Error:
        log.exception("could not count pending card reversals")


async def retry_once(hub: Hub) -> int:
    """Try every pending reversal whose terminal is up; the number still pending afterwards."""
    lock = hub.services.card_reversal_lock
    async with lock:  # one retry at a time: the housekeeping loop and a caller never void twice at once
        return await _retry(hub)


async def _retry(hub: Hub) -> int:
    handles = hub.services.terminal_handles
    store = hub.store
    for rev in pending(hub):
        handle = handles.get(rev.device_id)
        if handle is None or not handle.up:
            continue
        ok = False
        with trio.move_on_after(VOID_WAIT_S):
            try:
                ok = bool(await handle.void(rev.reference, rev.amount_cents))
            except trio.TooSlowError:
                ok = False
        attempts = rev.attempts + 1
        if not ok:
            hub.metrics.card_reversals_failed.inc()

        def fn(txn: lmdb.Transaction, rev: PendingReversal = rev, ok: bool = ok, n: int = attempts) -> None:
            if ok:
                PENDING_REVERSALS.delete(txn, store, rev.reference)
                audit.append(
                    txn,
                    store,
                    "card_reversal_done",
                    register=rev.register,
                    detail={"reference": rev.reference, "amount_cents": rev.amount_cents, "attempts": n},
                )
            else:
                PENDING_REVERSALS.put(txn, store, rev.reference, msgspec.structs.replace(rev, attempts=n))

        await hub.writer.write(fn, label="card-reversal")
        if ok:
            log.warning("card payment %s given back at the terminal after %d tries", rev.reference, attempts)
    left = len(pending(hub))
    hub.metrics.card_reversals_pending.set(left)
    return left


async def run(
    hub: Hub,
    results: trio.MemoryReceiveChannel[PaymentResult],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Housekeeping (hub/devices.py starts it when the store has a card terminal): record each sale result
    to give back as it comes (an approval nobody waited for, an unresolved partial approval), then void
    it; retry the pending reversals every ``RETRY_S`` until each is confirmed."""
    refresh_gauge(hub)
    task_status.started()
    paired: dict[str, str] = hub.services.devices.paired if hub.services.devices is not None else {}
    while True:
        with trio.move_on_after(RETRY_S):
            result = await results.receive()
            unresolved = result.outcome == "unresolved"
            await record(
                hub,
                reference=result.reference,
                device_id=result.device_id,
                amount_cents=result.amount_cents,
                reason=result.detail if unresolved else "approved after the register stopped waiting",
                register=paired.get(result.device_id, ""),
                failed=unresolved,
            )
        try:
            await retry_once(hub)
        except Exception:
            log.exception("could not retry the pending card reversals")
