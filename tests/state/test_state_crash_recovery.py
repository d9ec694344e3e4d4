"""Kill -9 of ``storehub demo`` (hub + in-process sandbox) with a backlog and a request in flight: after a
restart on the same data the backlog drains, nothing lost, nothing doubled."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import trio

from hub.client import connect
from hub.domain.catalog import Package
from hub.domain.demo_catalogue import build_demo_store
from hub.domain.outbox import OutboxEntry
from tests.state.conftest import ready
from tests.support.hubproc import read_table, start_demo


def outbox_of(data: Path) -> list[OutboxEntry]:
    return read_table(data, "outbox", OutboxEntry)


def pre_roll_tags(data: Path, n: int) -> list[str]:
    pkgs = read_table(data, "packages", Package)
    today = datetime.now(UTC).date()
    return [
        p.tag
        for p in pkgs
        if p.product_id in ("PRE-001", "PRE-002", "PRE-003")
        and p.status == "active"
        and p.lab_testing in ("passed", "retest_passed")
        and p.quantity >= 5
        and (p.expires_on is None or p.expires_on > today)
    ][:n]


async def test_kill_minus_nine_with_backlog_then_restart_drains_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    today = datetime.now(UTC).astimezone(ZoneInfo("America/Los_Angeles")).date()
    adult = (
        build_demo_store(today, home_jurisdiction="CA", id_hasher=lambda j, n: n).customer("adult").id_scan
    )
    demo = await start_demo(data, sandbox=True, start_s=15)
    proc, ws, url = demo.proc, demo.ws_port, demo.sandbox_url
    numbers: list[str] = []
    try:
        with trio.fail_after(20):
            async with httpx.AsyncClient(base_url=url, timeout=5) as admin:
                # every answer takes 30 s: the first entry is in flight when the hub dies
                (await admin.put("/_sandbox/faults", json={"latency_ms": 30_000})).raise_for_status()
                tags = pre_roll_tags(data, 3)
                assert tags
                async with connect(f"ws://127.0.0.1:{ws}") as c:
                    await ready(c)
                    for i in range(10):
                        await c.request("scan", data=adult)
                        await c.request("add_package", tag=tags[i % len(tags)])
                        paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 100_00}])
                        numbers.append(f"C10-0000001-LIC-{paid['receipt_number']}")
                while not any(e.state == "in_flight" for e in outbox_of(data)):
                    await trio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        with trio.fail_after(10):
            await proc.wait()
    before = outbox_of(data)
    assert len(before) == 10 and all(e.state != "sent" for e in before)
    assert [e.state for e in before].count("in_flight") == 1

    demo = await start_demo(data, sandbox=True, start_s=15)

    proc, ws, url = demo.proc, demo.ws_port, demo.sandbox_url
    try:
        with trio.fail_after(20):
            async with httpx.AsyncClient(base_url=url, timeout=5) as admin:
                while True:
                    receipts = (await admin.get("/_sandbox/state")).json()["receipts"]
                    if len(receipts) >= 10 and all(e.state == "sent" for e in outbox_of(data)):
                        break
                    await trio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            await proc.wait()
    counts = Counter(r["external_number"] for r in receipts)
    assert sorted(counts) == sorted(numbers) and set(counts.values()) == {1}
