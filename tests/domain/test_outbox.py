"""The outbox decisions: backoff, exactly-once via lookup, dead letters, per-package order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from hub.domain.outbox import (
    OutboxEntry,
    RetryPolicy,
    action,
    backlog,
    begin,
    decide,
    overdue,
    recover,
    retry_dead,
    sendable,
)

T0 = datetime(2024, 5, 1, 18, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_delay=timedelta(seconds=2), max_delay=timedelta(minutes=5), jitter=0.5)


def entry(
    seq: int, *labels: str, kind: str = "sale", state: str = "pending", at: datetime = T0
) -> OutboxEntry:
    return OutboxEntry(
        seq=seq,
        kind=kind,
        licence="LIC",
        idempotency_key=f"S-{seq}",
        payload=b"{}",
        package_labels=labels,
        created_at=at,
        next_attempt_at=at,
        state=state,
    )


def fixed(value: float):
    return lambda: value


def test_sent_records_when_and_the_state_reference():
    e = begin(entry(1, "A"), T0)
    assert e.state == "in_flight"
    done = decide(e, "sent", now=T0, rng=fixed(0.0), state_ref="10001")
    assert (done.state, done.sent_at, done.state_ref, done.last_error) == ("sent", T0, "10001", "")


def test_unavailable_backs_off_exponentially_with_bounded_jitter():
    e = entry(1, "A")
    delays = []
    for _ in range(10):
        e = decide(begin(e, T0), "unavailable", now=T0, rng=fixed(1.0), policy=POLICY, error="503")
        assert e.state == "pending"
        delays.append(e.next_attempt_at - T0)
    assert [d.total_seconds() for d in delays[:5]] == [2, 4, 8, 16, 32]
    assert delays[-1] == timedelta(minutes=5)  # capped
    low = decide(entry(1, "A", state="in_flight"), "unavailable", now=T0, rng=fixed(0.0), policy=POLICY)
    assert low.next_attempt_at - T0 == timedelta(seconds=1)  # jitter takes off at most half
    assert low.attempts == 1 and low.last_error_code == "state_unavailable"


def test_outcome_unknown_means_lookup_before_resend():
    e = decide(begin(entry(1, "A"), T0), "outcome_unknown", now=T0, rng=fixed(0.5), policy=POLICY)
    assert e.state == "unknown"
    assert action(e) == "lookup"
    # The lookup itself cannot reach the state: still unknown, never flipped to a blind resend.
    e2 = decide(begin(e, T0), "unavailable", now=T0, rng=fixed(0.5), policy=POLICY)
    assert e2.state == "unknown" and action(e2) == "lookup" and e2.attempts == 2
    # The state has it: sent, no resend.
    assert decide(e2, "found", now=T0, rng=fixed(0.5), state_ref="77").state == "sent"
    # The state does not have it: send again at once.
    again = decide(e2, "not_found", now=T0 + timedelta(seconds=9), rng=fixed(0.5))
    assert again.state == "pending" and action(again) == "send"
    assert again.next_attempt_at == T0 + timedelta(seconds=9)


def test_not_found_is_only_an_answer_to_a_lookup():
    with pytest.raises(ValueError):
        decide(entry(1, "A"), "not_found", now=T0, rng=fixed(0.5))


def test_crash_while_in_flight_recovers_as_unknown():
    e = begin(entry(1, "A"), T0)
    assert recover(e).state == "unknown"
    assert recover(entry(2, "B")).state == "pending"


def test_rejected_goes_to_dead_letter_and_can_be_retried_after_a_fix():
    e = decide(
        begin(entry(1, "A"), T0), "rejected", now=T0, rng=fixed(0.5), error="row 0: Package A does not exist"
    )
    assert e.state == "dead" and "does not exist" in e.last_error
    with pytest.raises(ValueError):
        begin(e, T0)
    fixed_entry = retry_dead(e, T0 + timedelta(hours=1), payload=b'{"fixed":true}')
    # it is looked up before it is sent again (it may have reached the state after all)
    assert (fixed_entry.state, fixed_entry.attempts, fixed_entry.payload) == ("unknown", 0, b'{"fixed":true}')
    assert action(fixed_entry) == "lookup"
    with pytest.raises(ValueError):
        retry_dead(fixed_entry, T0)


def test_rate_limited_waits_at_least_retry_after_and_is_not_a_failure():
    e = decide(
        begin(entry(1, "A"), T0), "rate_limited", now=T0, rng=fixed(0.0), policy=POLICY, retry_after=30
    )
    assert e.state == "pending" and e.attempts == 0
    assert e.next_attempt_at - T0 == timedelta(seconds=30)


def test_auth_failure_waits_long_and_keeps_the_entry():
    e = decide(begin(entry(1, "A"), T0), "auth", now=T0, rng=fixed(0.0), policy=POLICY, error="401")
    assert e.state == "pending" and e.next_attempt_at - T0 == POLICY.auth_delay


def test_per_package_order():
    sale_a = entry(1, "A")
    sale_b = entry(2, "B")
    void_a = entry(3, "A", kind="void")
    sale_ac = entry(4, "A", "C")
    sale_c = entry(5, "C")
    ready = sendable([sale_ac, void_a, sale_b, sale_a, sale_c], T0)
    # The void waits for its sale; a sale touching A and C waits for A, and C's next sale waits behind it.
    assert [e.seq for e in ready] == [1, 2]
    sent_a = msgspec.structs.replace(sale_a, state="sent")
    assert [e.seq for e in sendable([sent_a, sale_b, void_a, sale_ac, sale_c], T0)] == [2, 3]


def test_dead_and_unknown_entries_hold_back_their_packages_only():
    dead = entry(1, "A", state="dead")
    unknown = entry(2, "B", state="unknown")
    later_a, later_b, other = entry(3, "A"), entry(4, "B"), entry(5, "Z")
    assert [e.seq for e in sendable([dead, unknown, later_a, later_b, other], T0)] == [2, 5]


def test_waiting_entries_are_not_sendable_but_still_block():
    waiting = msgspec.structs.replace(entry(1, "A"), next_attempt_at=T0 + timedelta(seconds=10))
    later = entry(2, "A")
    assert sendable([waiting, later], T0) == []
    assert [e.seq for e in sendable([waiting, later], T0 + timedelta(seconds=10))] == [1]


def test_backlog_and_deadline():
    old = entry(1, "A", at=T0 - timedelta(hours=25))
    new = entry(2, "B", at=T0 - timedelta(minutes=1))
    sent = entry(3, "C", state="sent", at=T0 - timedelta(days=3))
    assert backlog([old, new, sent], T0) == (2, timedelta(hours=25))
    assert backlog([sent], T0) == (0, timedelta(0))
    assert overdue(old, T0, timedelta(hours=24)) and not overdue(new, T0, timedelta(hours=24))
    assert not overdue(sent, T0, timedelta(hours=24))


def test_entry_round_trips_through_msgpack():
    e = decide(begin(entry(7, "A", "B"), T0), "outcome_unknown", now=T0, rng=fixed(0.3), error="timeout")
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(e), type=OutboxEntry) == e
