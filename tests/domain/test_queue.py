"""The customer queue's rules, with values (hub/domain/queue.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.domain import queue
from hub.domain.catalog import Refusal

T0 = datetime(2026, 4, 20, 16, 0, tzinfo=UTC)


def w(ticket: str, who: str, minutes: int) -> queue.Waiting:
    return queue.Waiting(
        ticket=ticket, id_hash=who, label=who, customer_type="adult", since=T0 + timedelta(minutes=minutes)
    )


def test_first_come_first_served_and_pick_by_ticket() -> None:
    line = [w("1", "a", 0), w("2", "b", 1), w("3", "c", 2)]
    rest, first = queue.take(line, None, T0 + timedelta(minutes=5))  # type: ignore[misc]
    assert first.ticket == "1" and [x.ticket for x in rest] == ["2", "3"]
    rest, picked = queue.take(line, "3", T0 + timedelta(minutes=5))  # type: ignore[misc]
    assert picked.ticket == "3" and [x.ticket for x in rest] == ["1", "2"]
    missing = queue.take(line, "9", T0)
    assert isinstance(missing, Refusal) and missing.code == "not_waiting"
    empty = queue.take([], None, T0)
    assert isinstance(empty, Refusal) and empty.code == "queue_empty"


def test_same_person_keeps_place_and_ticket() -> None:
    line = [w("1", "a", 0), w("2", "b", 1)]
    result = queue.join(line, w("3", "a", 4), T0 + timedelta(minutes=4))
    assert not isinstance(result, Refusal)
    after, placed = result
    assert placed.ticket == "1" and [x.ticket for x in after] == ["1", "2"]


def test_full_queue_refused_and_old_entries_expire() -> None:
    line = [w(str(i), f"p{i}", 0) for i in range(queue.MAX_WAITING)]
    full = queue.join(line, w("x", "new", 1), T0 + timedelta(minutes=1))
    assert isinstance(full, Refusal) and full.code == "queue_full"
    # past MAX_WAIT the earlier customers have gone: there is room again
    later = T0 + queue.MAX_WAIT
    result = queue.join(line, w("x", "new", 1), later)
    assert not isinstance(result, Refusal) and [x.ticket for x in result[0]] == ["x"]


def test_minutes_waiting_and_tickets() -> None:
    assert queue.minutes_waiting(w("1", "a", 0), T0 + timedelta(minutes=7, seconds=59)) == 7
    assert queue.minutes_waiting(w("1", "a", 0), T0 - timedelta(seconds=5)) == 0
    assert queue.ticket_number(0) == 1 and queue.ticket_number(998) == 999 and queue.ticket_number(999) == 1
    assert queue.leave([w("1", "a", 0)], "1", T0) == []
