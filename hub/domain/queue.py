"""The store's queue of checked-in customers: who waits, in what order, and for how long.

A customer whose ID was checked while every budtender is busy waits here, visible on every register
(Dutchie's guest list, Flowhub's queue). The rules are plain functions over the list; the sale layer
stores it and publishes it (``hub/sale/queue.py``).

- First come, first served: a budtender takes the customer who has waited longest, or picks one by ticket.
- One place per person: the same ID scanned again keeps its place (a re-scan is not a second customer).
- A customer refused at the ID check does not wait (nothing to buy).
- Nobody waits forever: after ``MAX_WAIT`` the entry is dropped (the customer has gone, and their ID
  check and allotment would be stale anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec

from hub.domain.catalog import Refusal

MAX_WAITING = 50  # a store's lobby, not a stadium: beyond this something is wrong (a scanner loop)
MAX_WAIT = timedelta(hours=4)


class Waiting(msgspec.Struct, kw_only=True):
    """One customer in the queue, as every register shows them."""

    ticket: str  # short, said aloud: "number 12"
    id_hash: str  # keyed hash of the ID (never the number itself): one place per person
    label: str
    customer_type: str  # adult | medical | caregiver
    medical_on_file: bool = False  # a medical registration is on file: the budtender asks for the card
    since: datetime
    by_register: str = ""


W = TypeVar("W", bound=Waiting)


def ticket_number(previous: int) -> int:
    """The next ticket: 1..999, then round again (said aloud, three digits are plenty)."""
    return previous % 999 + 1


def expire(waiting: Sequence[W], now: datetime) -> list[W]:
    return [w for w in waiting if now - w.since < MAX_WAIT]


def join(waiting: Sequence[W], entry: W, now: datetime) -> tuple[list[W], W] | Refusal:
    """Add ``entry`` at the back; a person already waiting keeps their place (and their ticket)."""
    current = expire(waiting, now)
    for w in current:
        if w.id_hash == entry.id_hash:
            return current, w
    if len(current) >= MAX_WAITING:
        return Refusal(
            code="queue_full",
            message=f"The queue already holds {MAX_WAITING} customers: serve or remove some first.",
        )
    return [*current, entry], entry


def take(waiting: Sequence[W], ticket: str | None, now: datetime) -> tuple[list[W], W] | Refusal:
    """Take the customer with ``ticket``, or the one who has waited longest."""
    current = expire(waiting, now)
    if not current:
        return Refusal(code="queue_empty", message="Nobody is waiting.")
    if ticket is None:
        first = min(current, key=lambda w: w.since)
    else:
        found = next((w for w in current if w.ticket == ticket), None)
        if found is None:
            return Refusal(
                code="not_waiting",
                message=f"Ticket {ticket} is not in the queue (served elsewhere, or gone).",
            )
        first = found
    return [w for w in current if w is not first], first


def leave(waiting: Sequence[W], ticket: str, now: datetime) -> list[W] | Refusal:
    """The customer went away without buying."""
    result = take(waiting, ticket, now)
    if isinstance(result, Refusal):
        return result
    return result[0]


def minutes_waiting(entry: Waiting, now: datetime) -> int:
    return max(0, int((now - entry.since).total_seconds() // 60))
