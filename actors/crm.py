"""CRM actor: drains the CRM outbox to the configured webhook exactly once, in order per customer.

The same shape as ``actors/state_sync.py``: ``begin`` is committed before a request leaves, an entry
whose answer was lost is looked up before it is sent again, ``decide`` gives the next state, and when the
CRM is unreachable the whole channel waits until that entry's next attempt. Enrolments and sales commit
their entries in their own transactions and wake this actor; nothing at the counter waits for the CRM.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio

from hub.crm import outbox_store as box
from hub.domain.outbox import (
    DEFAULT_POLICY,
    OutboxEntry,
    RetryPolicy,
    action,
    begin,
    decide,
    recover,
    sendable,
)
from hub.state_channel.senders import Sender
from hub.store.keys import from_u64

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("storehub.crm")
_CHANNEL_CODES = ("crm_unavailable", "crm_rate_limited", "crm_auth", "crm_outcome_unknown")


class CrmActor:
    def __init__(
        self,
        hub: Hub,
        make_sender: Callable[[], Sender],
        *,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        poll_seconds: float = 2.0,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.hub = hub
        self.make_sender = make_sender
        self.retry_policy = retry_policy
        self.poll_seconds = poll_seconds
        self.rng = rng
        self.clock = clock
        self.paused_until: datetime | None = None
        self.last_error = ""
        self.last_sent_at: datetime | None = None
        self.sent = 0
        self._wake = trio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[CrmActor] = trio.TASK_STATUS_IGNORED) -> None:
        sender = self.make_sender()
        try:
            for entry in box.unsent(self.hub.store):
                if entry.state == "in_flight":
                    await self.hub.writer.write(
                        box.save(self.hub.store, "in_flight", recover(entry)), label="crm"
                    )
            task_status.started(self)
            while True:
                delay = await self.pass_once(sender)
                with trio.move_on_after(max(0.0, delay)):
                    await self._wake.wait()
                self._wake = trio.Event()
        finally:
            with trio.CancelScope(shield=True):
                await sender.aclose()  # type: ignore[attr-defined]

    async def pass_once(self, sender: Sender) -> float:
        now = self.clock()
        self._gauges(box.unsent(self.hub.store))  # also while paused: the backlog grows during an outage
        if self.paused_until is not None and now < self.paused_until:
            return min(self.poll_seconds, (self.paused_until - now).total_seconds())
        self.paused_until = None
        entries = box.unsent(self.hub.store)
        for entry in sendable(entries, now):
            updated = await self._attempt(sender, entry)
            if updated is None:
                continue
            if updated.state in ("pending", "unknown") and updated.last_error_code in _CHANNEL_CODES:
                self.paused_until = updated.next_attempt_at
                break
        entries = box.unsent(self.hub.store)
        self._gauges(entries)
        await self._advance_low_water(entries)
        due = [e.next_attempt_at for e in entries if e.state in ("pending", "unknown")]
        if self.paused_until is not None:
            due.append(self.paused_until)
        if not due:
            return self.poll_seconds
        return max(0.0, min(self.poll_seconds, (min(due) - self.clock()).total_seconds()))

    async def _attempt(self, sender: Sender, entry: OutboxEntry) -> OutboxEntry | None:
        store, write = self.hub.store, self.hub.writer.write
        act = action(entry)
        started = begin(entry, self.clock())
        if started is not entry and not await write(box.save(store, entry.state, started), label="crm"):
            return None
        result = await (sender.send(started) if act == "send" else sender.lookup(started))
        if result.outcome not in ("sent", "found", "not_found"):
            self.last_error = result.error
            log.info("crm %d (%s %s): %s %s", entry.seq, entry.kind, act, result.outcome, result.error)
        updated = decide(
            started,
            result.outcome,
            now=self.clock(),
            rng=self.rng,
            policy=self.retry_policy,
            error=result.error,
            error_code=result.code,
            retry_after=result.retry_after,
        )
        if not await write(box.save(store, started.state, updated), label="crm"):
            return None
        if updated.state == "sent":
            self.last_sent_at = updated.sent_at
            self.last_error = ""
            self.sent += 1
        elif updated.state == "dead":
            log.warning("crm %d dead-lettered: %s", updated.seq, updated.last_error)
        if result.outcome == "not_found":
            return await self._attempt(sender, updated)
        return updated

    async def _advance_low_water(self, entries: list[OutboxEntry]) -> None:
        store = self.hub.store
        current = box.low_water(store)
        if entries:
            target = min(e.seq for e in entries)
        else:
            with store.read() as txn, txn.cursor(db=store.db("crm_outbox")) as cur:
                target = from_u64(cur.key()) + 1 if cur.last() else 0
        if target > current:
            await self.hub.writer.write(box.set_low_water(store, target), label="crm")

    def _gauges(self, entries: list[OutboxEntry]) -> None:
        """The backlog as the state channel exports its own: a count, and the oldest entry's creation as a
        timestamp (an age would freeze if this actor stalled)."""
        m = self.hub.metrics
        m.crm_outbox_pending.set(len(entries))
        m.crm_outbox_oldest_pending.set(min(e.created_at for e in entries).timestamp() if entries else 0)

    def status(self) -> dict[str, Any]:
        entries = box.unsent(self.hub.store)
        return {
            "backlog": sum(1 for e in entries if e.state != "dead"),
            "dead": sum(1 for e in entries if e.state == "dead"),
            "paused_until": self.paused_until.isoformat() if self.paused_until else None,
            "last_error": self.last_error,
            "last_sent_at": self.last_sent_at.isoformat() if self.last_sent_at else None,
        }
