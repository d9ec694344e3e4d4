"""Kill -9 of ``storehub demo`` (hub + in-process sandbox) with a backlog and a request in flight: after a
restart on the same data the backlog drains, nothing lost, nothing doubled."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import httpx
import lmdb
import trio

from hub.client import connect
from hub.domain.catalog import Package
from hub.domain.demo_catalogue import build_demo_store
from hub.domain.outbox import OutboxEntry
from hub.store.env import decode
from tests.state.conftest import ready

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


async def start_demo(data: Path) -> tuple[trio.Process, int, str]:
    """``python -m hub.cli demo`` on free ports; returns the process, its WS port and its sandbox URL."""
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "demo",
            "--data",
            str(data),
            "--http-port",
            "0",
            "--ws-port",
            "0",
            "--no-devices",
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    text = ""
    with trio.fail_after(15):
        while "Ctrl-C to stop" not in text:
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, f"the demo exited early:\n{text}"
            text += chunk.decode(errors="replace")
    ws = int(re.search(r"Live protocol: ws://[^:]+:(\d+)", text).group(1))  # type: ignore[union-attr]
    url = re.search(r"State-system sandbox: (\S+)", text).group(1)  # type: ignore[union-attr]
    return proc, ws, url


def read_table(data: Path, table: str, type_: type[T]) -> list[T]:
    """Read a table of the running hub's store from this process (LMDB allows other readers)."""
    env = lmdb.open(str(data), readonly=True, max_dbs=64, lock=True)
    try:
        db = env.open_db(table.encode(), create=False)
        with env.begin(db=db) as txn:
            return [decode(v, type_) for _, v in txn.cursor()]
    finally:
        env.close()


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
    proc, ws, url = await start_demo(data)
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

    proc, ws, url = await start_demo(data)
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
