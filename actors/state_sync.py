"""State-sync actor: one per licence, it drains the outbox to the state system exactly once, in order.

Each pass reads the unsent entries (a short read transaction, never held across an await), asks the core
which may go now (``sendable``: in order per package), and for each one:

1. ``begin`` is committed *before* the request leaves, so a crash mid-send recovers (``recover``) to
   "unknown" at the next start;
2. an entry whose outcome is unknown is first looked up at the state (Metrc external receipt number,
   BioTrack ``RequestID`` / nonce) and only sent again when the state does not have it;
3. ``decide`` gives the next state (sent, retry later with backoff and jitter, dead letter) and it is
   committed.

When the state is unreachable, rate-limits or refuses the keys, the whole channel pauses until that
entry's next attempt: the other entries would fail the same way. Registers never wait for any of this:
a sale commits its outbox entry with the sale and wakes the actor (``wake``) on its way out.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from hub.domain.outbox import (
    DEFAULT_POLICY,
    OutboxEntry,
    RetryPolicy,
    action,
    backlog,
    begin,
    decide,
    recover,
    sendable,
)
from hub.domain.state_payloads import StateReturn, StateSale
from hub.signals import report_gauges
from hub.state_channel import outbox_store as box
from hub.state_channel.policy import policy_for
from hub.state_channel.senders import Sender
from hub.store.keys import from_u64
from hub.store.layout import STATE_OUTBOX_TOPIC

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("storehub.state_sync")


class StateSyncActor:
    def __init__(
        self,
        hub: Hub,
        licence: str,
        make_sender: Callable[[dict[str, str]], Sender],
        *,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        poll_seconds: float = 2.0,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.hub = hub
        self.licence = licence  # the outbox licence (the store's) this actor drains
        self.make_sender = make_sender
        self.retry_policy = retry_policy
        self.poll_seconds = poll_seconds
        self.rng = rng
        self.clock = clock
        self.paused_until: datetime | None = None
        self.last_error = ""
        # the class of the last attempt's answer (hub.domain.outbox.Outcome): readiness decides on it,
        # never on the text of an error (a package tag may well contain "403")
        self.last_outcome = ""
        self.last_sent_at: datetime | None = None
        self._wake = trio.Event()

    # -- the outside world's handle ----------------------------------------------------------------------

    def wake(self) -> None:
        """Something was committed to the outbox (an entry added, a retry): look now, not at the next poll."""
        self._wake.set()

    # -- the actor ---------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[StateSyncActor] = trio.TASK_STATUS_IGNORED) -> None:
        self.deadline = policy_for(self.hub.config.store.jurisdiction).deadline
        self.hub.metrics.licence(self.licence, self.deadline.total_seconds())
        refs = box.refs(self.hub.store)
        sender = self.make_sender(refs)
        self.refs = refs
        # every entry added to the outbox (box.add) wakes this actor once its transaction has committed
        stop_listening = self.hub.store.commits.listen(STATE_OUTBOX_TOPIC, self.wake)
        try:
            await self._recover()
            task_status.started(self)
            while True:
                delay = await self.pass_once(sender)
                await self._idle(delay)
        finally:
            stop_listening()
            with trio.CancelScope(shield=True):
                await sender.aclose()

    async def _recover(self) -> None:
        """An entry left in flight by a crash may have reached the state: its outcome is unknown."""
        for entry in box.unsent(self.hub.store, self.licence):
            if entry.state == "in_flight":
                await self.hub.writer.write(box.save(self.hub.store, "in_flight", recover(entry)))
                log.warning("outbox entry %d was in flight at a crash; will look it up first", entry.seq)

    async def _idle(self, delay: float) -> None:
        with trio.move_on_after(max(0.0, delay)):
            await self._wake.wait()
        self._wake = trio.Event()

    async def pass_once(self, sender: Sender) -> float:
        """Attempt what may go now; returns how long to wait before the next pass."""
        now = self.clock()
        entries = box.unsent(self.hub.store, self.licence)
        self._gauges(entries, now)
        if self.paused_until is not None and now < self.paused_until:
            return min(self.poll_seconds, (self.paused_until - now).total_seconds())
        self.paused_until = None
        for entry in sendable(entries, now):
            updated = await self._attempt(sender, entry)
            if updated is None:
                continue
            if updated.state in ("pending", "unknown") and updated.last_error_code in _channel_codes():
                self.paused_until = updated.next_attempt_at
                break
        entries = box.unsent(self.hub.store, self.licence)
        await self._advance_low_water(entries)
        now = self.clock()
        self._gauges(entries, now)
        due = [e.next_attempt_at for e in entries if e.state in ("pending", "unknown")]
        if self.paused_until is not None:
            due.append(self.paused_until)
        if not due:
            return self.poll_seconds
        return max(0.0, min(self.poll_seconds, (min(due) - now).total_seconds()))

    async def _attempt(self, sender: Sender, entry: OutboxEntry) -> OutboxEntry | None:
        store, write = self.hub.store, self.hub.writer.write
        act = action(entry)
        started = begin(entry, self.clock())
        if started is not entry and not await write(box.save(store, entry.state, started), label="outbox"):
            return None  # a person changed it meanwhile
        t0 = trio.current_time()
        result = await (sender.send(started) if act == "send" else sender.lookup(started))
        self.hub.metrics.state_send_seconds.labels(self.licence).observe(trio.current_time() - t0)
        self.last_outcome = result.outcome
        if result.outcome in ("sent", "found"):
            self.last_error = ""
        if result.outcome not in ("sent", "found", "not_found"):
            self.hub.metrics.state_errors.labels(self.licence, result.outcome).inc()
            self.last_error = result.error
            log.info(
                "outbox %d (%s %s): %s %s",
                entry.seq,
                entry.kind,
                act,
                result.outcome,
                for_log(entry, result.error),
            )
        updated = decide(
            started,
            result.outcome,
            now=self.clock(),
            rng=self.rng,
            policy=self.retry_policy,
            error=result.error,
            error_code=result.code,
            retry_after=result.retry_after,
            state_ref=result.state_ref,
        )
        if not await write(box.save(store, started.state, updated), label="outbox"):
            return None
        if updated.state == "sent":
            self.last_sent_at = updated.sent_at
            if updated.state_ref:
                self.refs[updated.idempotency_key] = updated.state_ref
        elif updated.state == "dead":
            log.warning("outbox %d dead-lettered: %s", updated.seq, for_log(updated, updated.last_error))
        if result.outcome == "not_found":
            # the state does not have it: the earlier request never landed, so send it now
            return await self._attempt(sender, updated)
        return updated

    async def _advance_low_water(self, entries: list[OutboxEntry]) -> None:
        store = self.hub.store
        current = box.low_water(store, self.licence)
        if entries:
            target = min(e.seq for e in entries)
        else:
            with store.read() as txn, txn.cursor(db=store.db("outbox")) as cur:
                target = from_u64(cur.key()) + 1 if cur.last() else 0
        if target > current:
            await self.hub.writer.write(box.set_low_water(store, self.licence, target), label="outbox")

    def _gauges(self, entries: list[OutboxEntry], now: datetime) -> None:
        m = self.hub.metrics
        depth, age = backlog(entries, now)
        m.state_backlog.labels(self.licence).set(depth)
        # timestamps, not ages (an age freezes when this actor stalls); deadlines per entry (policy.py)
        report_gauges(m, self.licence, entries, now, self.deadline, self.last_sent_at)
        self.backlog = (depth, age)

    backlog: tuple[int, timedelta] = (0, timedelta(0))
    deadline: timedelta = policy_for("").deadline
    refs: dict[str, str] = {}

    def status(self) -> dict[str, Any]:
        depth, age = self.backlog
        return {
            "licence": self.licence,
            "backlog": depth,
            "oldest_unsent_seconds": round(age.total_seconds(), 3),
            "paused_until": self.paused_until.isoformat() if self.paused_until else None,
            "last_error": self.last_error,
            "last_outcome": self.last_outcome,
            "last_sent_at": self.last_sent_at.isoformat() if self.last_sent_at else None,
        }


def for_log(entry: OutboxEntry, text: str) -> str:
    """A state system's message may echo the patient's or caregiver's licence number: logs never carry it
    (the dead-letter list in the back office keeps the message whole, for the people allowed to read it)."""
    if entry.kind not in ("sale", "return", "void") or not text:
        return text

    try:
        if entry.kind == "sale":
            sale = msgspec.msgpack.decode(entry.payload, type=StateSale)
        elif entry.kind == "return":
            sale = msgspec.msgpack.decode(entry.payload, type=StateReturn).sale
        else:
            return text
    except msgspec.DecodeError:
        return text
    for number in (sale.patient_license, sale.caregiver_license):
        if number:
            text = text.replace(number, "[licence number]")
    return text


def _channel_codes() -> tuple[str, ...]:
    # decide() records these codes for the outcomes that say "the state, not this entry, is the problem"
    return ("state_unavailable", "state_rate_limited", "state_auth", "state_protocol")
