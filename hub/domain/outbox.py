"""The outbox to the state system, as pure decisions: no I/O, no clock, no randomness of its own.

Every sale, void, return and adjustment is written as an ``OutboxEntry`` in the same transaction as the event.
The state-sync actor asks this module what to do next and records the answer:

- ``action(entry)``: ``"send"``, or ``"lookup"`` when the last attempt's outcome is unknown (or a person
  retries a dead letter). Exactly once means: before re-sending an entry whose request may have been
  applied, ask the state whether it has it. What is asked, per system and kind, is the one table
  ``hub.state_channel.senders.LOOKUPS``.
- ``begin(entry, now)``: mark it in flight *before* the request leaves. After a crash an in-flight entry is
  ``recover``-ed as unknown, because the request may have reached the state.
- ``decide(entry, outcome, …)``: the next state and the next attempt time, with exponential backoff and jitter
  from an injected random source.
- ``sendable(entries, now)``: in order per package: an entry goes only when no earlier unsent entry touches
  one of its packages (a void never overtakes its sale; quantities change in the order they happened).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import msgspec

EntryKind = Literal["sale", "void", "return", "adjustment", "customer"]  # "customer": the CRM bridge
EntryState = Literal["pending", "in_flight", "unknown", "sent", "dead"]
Outcome = Literal[
    "sent",  # the state accepted it
    "unavailable",  # it never reached the state (outage, refused connection, 503)
    "outcome_unknown",  # it left, no answer came back
    "rejected",  # 400: a person must fix it
    "rate_limited",  # 429
    "auth",  # 401/403: the keys need a person
    "found",  # lookup: the state has it (so it was sent)
    "not_found",  # lookup: the state does not have it (send again)
]
Action = Literal["send", "lookup"]
UNSENT: frozenset[str] = frozenset({"pending", "in_flight", "unknown", "dead"})


class OutboxEntry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int  # commit order; the sending order
    kind: EntryKind
    licence: str  # one state-sync actor per licence
    idempotency_key: str  # Metrc ExternalReceiptNumber / BioTrack RequestID or nonce
    payload: bytes  # msgspec-encoded StateSale / StateVoid / StateReturn / StateAdjustment
    package_labels: tuple[str, ...]
    created_at: datetime  # UTC
    next_attempt_at: datetime  # UTC
    attempts: int = 0
    state: EntryState = "pending"
    last_error: str = ""
    last_error_code: str = ""
    sent_at: datetime | None = None
    state_ref: str = ""  # the state's id once known (Metrc receipt id, BioTrack transaction id)
    # new fields go last, with defaults


@dataclass(frozen=True)
class RetryPolicy:
    base_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(minutes=5)
    auth_delay: timedelta = timedelta(minutes=5)  # keys need a person; do not hammer the state meanwhile
    jitter: float = 0.5  # the share of each delay that is random: delay * (1 - jitter + jitter * rng())

    def backoff(self, attempts: int, rng: Callable[[], float]) -> timedelta:
        """Exponential in the number of failed attempts so far (1 → base), capped, with jitter."""
        exponent = max(0, attempts - 1)
        raw = min(self.max_delay.total_seconds(), self.base_delay.total_seconds() * (2 ** min(exponent, 30)))
        factor = 1.0 - self.jitter + self.jitter * rng()
        return timedelta(seconds=raw * factor)


DEFAULT_POLICY = RetryPolicy()


def action(entry: OutboxEntry) -> Action:
    return "lookup" if entry.state == "unknown" else "send"


def begin(entry: OutboxEntry, now: datetime) -> OutboxEntry:
    """Recorded (durably) just before the request leaves."""
    if entry.state not in ("pending", "unknown"):
        raise ValueError(f"entry {entry.seq} is {entry.state}; only pending or unknown entries are attempted")
    if entry.state == "unknown":
        return entry  # a lookup is read-only; the entry stays unknown until the state answers
    return msgspec.structs.replace(entry, state="in_flight")


def recover(entry: OutboxEntry) -> OutboxEntry:
    """After a restart: an entry that was in flight may have reached the state; treat its outcome as unknown."""
    if entry.state == "in_flight":
        return msgspec.structs.replace(entry, state="unknown")
    return entry


def decide(
    entry: OutboxEntry,
    outcome: Outcome,
    *,
    now: datetime,
    rng: Callable[[], float],
    policy: RetryPolicy = DEFAULT_POLICY,
    error: str = "",
    error_code: str = "",
    retry_after: float | None = None,
    state_ref: str = "",
) -> OutboxEntry:
    """The entry after an attempt (a send or a lookup) ended with ``outcome``."""
    replace = msgspec.structs.replace
    # ``begin`` turns a send into in_flight and leaves a lookup's entry unknown.
    was_unknown = entry.state == "unknown"
    if outcome in ("sent", "found"):
        return replace(
            entry,
            state="sent",
            sent_at=now,
            state_ref=state_ref or entry.state_ref,
            last_error="",
            last_error_code="",
            next_attempt_at=now,
        )
    if outcome == "not_found":
        if not was_unknown:
            raise ValueError("not_found answers a lookup; this entry was not awaiting one")
        # The state does not have it: the earlier request never landed, so sending again is safe, now.
        return replace(entry, state="pending", next_attempt_at=now)
    if outcome == "rejected":
        return replace(entry, state="dead", last_error=error, last_error_code=error_code or "state_rejected")
    attempts = entry.attempts + 1
    # A failed lookup leaves the outcome as unknown as it was; a failed send that may have landed is unknown.
    if outcome == "outcome_unknown" or was_unknown:
        next_state: EntryState = "unknown"
    else:
        next_state = "pending"
    if outcome == "rate_limited":
        delay = max(timedelta(seconds=retry_after or 0.0), policy.backoff(1, rng))
        attempts = entry.attempts  # being told to wait is not a failure of the entry
    elif outcome == "auth":
        delay = policy.auth_delay
    elif outcome in ("unavailable", "outcome_unknown"):
        delay = policy.backoff(attempts, rng)
    else:  # pragma: no cover - Literal exhausts the cases
        raise ValueError(f"unknown outcome {outcome!r}")
    return replace(
        entry,
        state=next_state,
        attempts=attempts,
        next_attempt_at=now + delay,
        last_error=error,
        last_error_code=error_code or _default_code(outcome),
    )


def _default_code(outcome: Outcome) -> str:
    return {
        "unavailable": "state_unavailable",
        "outcome_unknown": "state_outcome_unknown",
        "rate_limited": "state_rate_limited",
        "auth": "state_auth",
    }.get(outcome, "")


def retry_dead(entry: OutboxEntry, now: datetime, payload: bytes | None = None) -> OutboxEntry:
    """A person fixed the cause (and maybe the payload); try it again, *looking it up first*.

    A dead letter may have reached the state after all (a lookup that could not tell, a 400 to a resend
    whose first attempt had landed, a person who fixed it in the state's own screens): what the state
    already has decides what is sent, so the retried entry starts as "unknown" (``action`` -> lookup)."""
    if entry.state != "dead":
        raise ValueError(f"entry {entry.seq} is {entry.state}, not dead")
    return msgspec.structs.replace(
        entry,
        state="unknown",
        attempts=0,
        next_attempt_at=now,
        payload=entry.payload if payload is None else payload,
        last_error="",
        last_error_code="",
    )


def sendable(entries: Iterable[OutboxEntry], now: datetime) -> list[OutboxEntry]:
    """Entries that may be attempted now, in sequence order.

    An entry is blocked while any earlier unsent entry (pending, in flight, unknown or dead) touches one of
    its packages; a dead letter therefore holds back later entries of the same packages until it is fixed.
    """
    blocked: set[str] = set()
    out: list[OutboxEntry] = []
    for entry in sorted(entries, key=lambda e: e.seq):
        if entry.state == "sent":
            continue
        labels = set(entry.package_labels)
        clear = not (labels & blocked)
        if clear and entry.state in ("pending", "unknown") and entry.next_attempt_at <= now:
            out.append(entry)
        blocked |= labels
    return out


def backlog(entries: Iterable[OutboxEntry], now: datetime) -> tuple[int, timedelta]:
    """(unsent entries, age of the oldest) — what the backlog alert watches."""
    unsent = [e for e in entries if e.state in UNSENT]
    if not unsent:
        return 0, timedelta(0)
    return len(unsent), now - min(e.created_at for e in unsent)


def overdue(entry: OutboxEntry, now: datetime, deadline: timedelta) -> bool:
    """Past the jurisdiction's reporting deadline (e.g. CA: 24 h) and still not sent."""
    return entry.state in UNSENT and now - entry.created_at > deadline
