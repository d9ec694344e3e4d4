"""Deliveries to the outside that are not the state system: order-status callbacks to a channel and
customer notices. Pure decisions, like ``hub.domain.outbox``: the entry is written in the same transaction
as the change it reports; the actor asks ``due`` what may go now and records ``after`` the attempt.

In order per ``key`` (a channel's callbacks, one order's notices): an entry waits while an earlier entry of
the same key is still pending, so a "ready" never overtakes its "accepted". Every entry carries its ``seq``
as the event id, so a receiver that saw it before (the hub crashed between the answer and the commit)
recognises it: each change counts once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from hub.domain.outbox import DEFAULT_POLICY, RetryPolicy

DeliveryState = Literal["pending", "sent", "dead"]
MAX_ATTEMPTS = 50  # with the backoff capped at minutes, about a day of trying before a person looks


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    route: str  # a channel id (callbacks); "email" / "sms" / "sink" (notices)
    key: str  # the ordering key
    kind: str  # the order state reported, or the notice kind
    order_id: str
    payload: bytes  # the JSON body (callbacks) or the message text (notices)
    created_at: datetime
    next_attempt_at: datetime
    to: str = ""  # the address or phone number of a notice
    subject: str = ""
    attempts: int = 0
    state: DeliveryState = "pending"
    last_error: str = ""
    sent_at: datetime | None = None


def due(entries: Iterable[Delivery], now: datetime) -> list[Delivery]:
    blocked: set[str] = set()
    out = []
    for e in sorted(entries, key=lambda e: e.seq):
        if e.state != "pending":
            continue
        if e.key not in blocked and e.next_attempt_at <= now:
            out.append(e)
        blocked.add(e.key)
    return out


def after(
    entry: Delivery,
    ok: bool,
    *,
    now: datetime,
    rng: Callable[[], float],
    policy: RetryPolicy = DEFAULT_POLICY,
    error: str = "",
    permanent: bool = False,
) -> Delivery:
    """The entry after one attempt: sent; given up (refused for good, or tried too often); or retried later."""
    replace = msgspec.structs.replace
    if ok:
        return replace(entry, state="sent", sent_at=now, last_error="", attempts=entry.attempts + 1)
    attempts = entry.attempts + 1
    if permanent or attempts >= MAX_ATTEMPTS:
        return replace(entry, state="dead", attempts=attempts, last_error=error)
    return replace(
        entry, attempts=attempts, last_error=error, next_attempt_at=now + policy.backoff(attempts, rng)
    )


def oldest_pending(entries: Iterable[Delivery], now: datetime) -> timedelta:
    pending = [e.created_at for e in entries if e.state == "pending"]
    return now - min(pending) if pending else timedelta(0)
