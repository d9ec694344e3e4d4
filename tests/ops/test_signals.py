"""The signals behind the compliance, money and security panels and alerts (hub/signals.py), and the
backup's outcome as `storehub backup` leaves it for the running hub."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from hub import audit, signals
from hub.app import Hub
from hub.domain.outbox import OutboxEntry
from hub.metrics import Metrics
from hub.signals import backup_status, is_open, record_backup, report_gauges


def value(hub: Hub, text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"{name} {labels} not exported")


async def scrape(hub: Hub) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{hub.http_port}/metrics")).text


def test_opening_hours_are_read_in_the_stores_zone() -> None:
    la = ZoneInfo("America/Los_Angeles")
    # 06:00 UTC in December is 22:00 the evening before in Sacramento: closed at 22:00 sharp is still open
    at = datetime(2026, 12, 1, 6, 30, tzinfo=UTC).astimezone(la)
    assert not is_open("08:00-22:00", at)
    assert is_open("08:00-22:00", datetime(2026, 12, 1, 18, 0, tzinfo=UTC).astimezone(la))  # 10:00 local
    assert is_open("10:00-02:00", datetime(2026, 12, 2, 9, 0, tzinfo=UTC).astimezone(la))  # 01:00 local
    assert is_open("00:00-24:00", at)


def entry(seq: int, created: datetime, state: str = "pending") -> OutboxEntry:
    return OutboxEntry(
        seq=seq,
        kind="sale",
        licence="L1",
        idempotency_key=f"k{seq}",
        payload=b"",
        package_labels=(f"P{seq}",),
        created_at=created,
        next_attempt_at=created,
        state=state,  # type: ignore[arg-type]
    )


def test_each_entry_has_its_own_deadline_and_dead_letters_page_apart() -> None:
    m = Metrics()
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    deadline = timedelta(minutes=5)  # Ohio
    entries = [
        entry(1, now - timedelta(minutes=9), "dead"),  # past the deadline, but a person's job: its own alert
        entry(2, now - timedelta(minutes=6)),  # overdue and still being sent
        entry(5, now - timedelta(minutes=5, seconds=30), "unknown"),  # overdue, outcome unknown: sending
        entry(3, now - timedelta(minutes=1)),
        entry(4, now - timedelta(minutes=20), "sent"),
    ]
    report_gauges(m, "L1", entries, now, deadline, now - timedelta(minutes=30))
    assert m.state_oldest_unsent.labels("L1")._value.get() == (now - timedelta(minutes=9)).timestamp()
    # the earliest deadline among the entries still being sent: entry 2's
    assert m.state_next_deadline.labels("L1")._value.get() == (now - timedelta(minutes=1)).timestamp()
    # only entries still being sent count as overdue: a dead letter pages as StateSyncDeadLetter, and an
    # old one must not stand in for (and, by the alerts' no-double-paging rule, hide) a real outage
    assert m.state_overdue.labels("L1")._value.get() == 2
    assert m.state_dead_letter.labels("L1")._value.get() == 1
    report_gauges(m, "L1", [entries[0], entries[3]], now, deadline, None)  # a dead letter, one not due
    assert m.state_overdue.labels("L1")._value.get() == 0
    assert m.state_dead_letter.labels("L1")._value.get() == 1
    assert m.state_last_sent.labels("L1")._value.get() == (now - timedelta(minutes=30)).timestamp()
    report_gauges(m, "L1", [], now, deadline, None)
    assert m.state_next_deadline.labels("L1")._value.get() == 0
    assert m.state_oldest_unsent.labels("L1")._value.get() == 0


def test_backup_outcome_is_left_for_the_hub(tmp_path: Path) -> None:
    assert backup_status(str(tmp_path)) == (0.0, 0.0)
    record_backup(tmp_path, ok=False, error="OSError")
    success, failure = backup_status(str(tmp_path))
    assert success == 0 and failure > 0
    record_backup(tmp_path, ok=True)
    success, failure2 = backup_status(str(tmp_path))
    assert success >= failure == failure2


async def test_backup_command_and_hub_metrics_agree(hub: Hub, tmp_path: Path) -> None:
    hub.config.storage.backup_dir = str(tmp_path / "backups")
    assert value(hub, await scrape(hub), "storehub_backup_last_success_timestamp_seconds") == 0
    dest = tmp_path / "backups" / "2026-12-01-0300"
    for expect in (0, 2):  # the second run finds its destination taken: a failure
        r = await trio.to_thread.run_sync(
            lambda: subprocess.run(
                [sys.executable, "-m", "hub.cli", "backup", str(dest), "--data", hub.config.storage.data_dir],
                capture_output=True,
                text=True,
                timeout=120,
            )
        )
        assert r.returncode == expect, r.stderr
    text = await scrape(hub)
    success = value(hub, text, "storehub_backup_last_success_timestamp_seconds")
    failure = value(hub, text, "storehub_backup_last_failure_timestamp_seconds")
    assert 0 < success <= failure  # BackupFailed's condition: the latest attempt failed


async def test_long_held_reader_is_seen_with_its_start_and_lag(hub: Hub) -> None:
    assert value(hub, await scrape(hub), "storehub_store_oldest_reader_since_timestamp_seconds") == 0
    txn = hub.store.env.begin()  # a reader nobody closes (a stuck report, a backup copy)
    try:
        txn.get(b"x", db=hub.store.db("meta"))
        first = value(hub, await scrape(hub), "storehub_store_oldest_reader_since_timestamp_seconds")
        assert first > 0
        for i in range(3):
            await hub.writer.write(
                lambda t, i=i: audit.append(t, hub.store, "test_write", detail={"i": i}), label="t"
            )
        text = await scrape(hub)
        assert value(hub, text, "storehub_store_oldest_reader_since_timestamp_seconds") == first  # not an age
        assert value(hub, text, "storehub_store_reader_lag_transactions") >= 3
    finally:
        txn.abort()
    assert value(hub, await scrape(hub), "storehub_store_oldest_reader_since_timestamp_seconds") == 0


async def test_audit_events_count_what_was_committed_since_start(hub: Hub) -> None:
    before = value(hub, await scrape(hub), "storehub_audit_events_total", action="lockout")
    for _ in range(2):
        await hub.writer.write(lambda t: audit.append(t, hub.store, "lockout", staff="ana"), label="t")
    text = await scrape(hub)
    assert value(hub, text, "storehub_audit_events_total", action="lockout") == before + 2
    assert value(hub, text, "storehub_audit_chain_ok") == 1
    with trio.fail_after(10):  # the first verification runs in a worker thread right after the start
        while value(hub, await scrape(hub), "storehub_audit_last_verification_timestamp_seconds") == 0:
            await trio.sleep(0.05)
    assert value(hub, text, "storehub_store_created_timestamp_seconds") > 0


async def test_cash_flags_manifests_and_reconciliation_as_counts_and_times(hub: Hub) -> None:
    from hub.backoffice.cash_flags import upsert
    from hub.domain.cash_compliance import CashFlag
    from hub.state_channel.pulls import Discrepancy, Manifest, Reconciliation
    from hub.store.env import put
    from hub.store.keys import text, u64

    raised = datetime.now(UTC) - timedelta(hours=30)
    flag = CashFlag(
        flag_id="form_8300:cust-1:17",
        kind="form_8300",
        customer_id="cust-1",
        window_start=raised,
        window_end=raised,
        total_cents=1_050_000,
        receipt_numbers=(17, 18),
        threshold_cents=1_000_000,
        sentence="Cash over $10,000 within 24 hours.",
    )
    manifest = Manifest(
        manifest="0000012345",
        transfer_id=1,
        delivery_id=1,
        shipper_license="C11-0000001-LIC",
        shipper_name="A Distributor",
        estimated_arrival="2026-12-01T10:00:00",
        lines=[],
    )
    rec = Reconciliation(
        id=1,
        licence="C10-0000001-LIC",
        facility="C10-0000001-LIC",
        at=raised,
        trigger="schedule",
        by="",
        compared=10,
        discrepancies=[
            Discrepancy(label="PKG-1", kind="quantity", unit="Each", local=3, state=4),
            Discrepancy(label="PKG-2", kind="quantity", unit="Each", local=1, state=2, adjusted_by=7),
        ],
    )

    def fn(txn: object) -> None:
        upsert(txn, hub.store, flag, raised)  # type: ignore[arg-type]
        put(txn, hub.store, "manifests", text(manifest.manifest), manifest)  # type: ignore[arg-type]
        put(txn, hub.store, "reconciliations", u64(1), rec)  # type: ignore[arg-type]

    await hub.writer.write(fn, label="t")
    text_ = await scrape(hub)
    assert value(hub, text_, "storehub_cash_flags_unreviewed") == 1
    assert value(hub, text_, "storehub_cash_flag_oldest_unreviewed_timestamp_seconds") == raised.timestamp()
    assert value(hub, text_, "storehub_manifests_waiting") == 1
    assert value(hub, text_, "storehub_reconciliation_discrepancies") == 1  # the adjusted one is done
    assert value(hub, text_, "storehub_reconciliation_last_timestamp_seconds") == raised.timestamp()
    # counts and times only: nothing of the customer is exported
    assert "cust-1" not in text_ and "0000012345" not in text_


def test_opening_hours_that_are_no_time_are_refused_naming_the_field() -> None:
    from hub.config import ConfigError, parse_config
    from tests.conftest import TEST_TOML

    zone = 'time_zone = "America/Los_Angeles"'
    for bad in ("25:00-22:00", "08:00-22:60"):
        with pytest.raises(ConfigError, match="store.opening_hours"):
            parse_config(TEST_TOML.replace(zone, f'{zone}\nopening_hours = "{bad}"'))
    ok = parse_config(TEST_TOML.replace(zone, f'{zone}\nopening_hours = "00:00-24:00"'))
    assert ok.store.opening_hours == "00:00-24:00"


async def test_whole_tables_are_read_at_most_every_ten_seconds(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawers, cash flags and manifests are read whole on the trio thread: a flood of /metrics requests
    must not repeat that more than once per Signals.TABLES_EVERY_S; the gauges keep their last values."""
    reads: list[int] = []
    real = signals.drawers
    monkeypatch.setattr(signals, "drawers", lambda store: (reads.append(1), real(store))[1])
    for _ in range(5):
        text_ = await scrape(hub)
        assert value(hub, text_, "storehub_drawers_open") == 0
    assert len(reads) == 1
    assert hub.signals.tables_read_at is not None
    hub.signals.tables_read_at -= signals.Signals.TABLES_EVERY_S  # ten seconds later
    await scrape(hub)
    assert len(reads) == 2
