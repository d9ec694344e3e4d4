"""The chain link's shipping loop over a fake JetStream: it resumes after the acknowledged position, names
each message store:seq, keeps its position when a publish fails, and refuses to ship a store whose log is
shorter than what was acknowledged (restored from a backup)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hub import audit
from hub.chain.events import ChainEvent
from hub.chain.link import Link, LinkSettings, Position, load_position, save_position
from hub.store.env import Store


def make_store(path: Path, entries: int) -> None:
    s = Store(path, map_size=16 << 20, durable=False)
    with s.env.begin(write=True) as txn:
        for i in range(entries):
            audit.append(txn, s, "drawer_deposit", staff="maria", detail={"n": i})
    s.close()


class FakeJetStream:
    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[tuple[str, str, ChainEvent]] = []
        self.fail_first = fail_first

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str], timeout: float) -> Any:
        if self.fail_first:
            self.fail_first -= 1
            raise TimeoutError("no ack (the WAN is down)")
        self.sent.append((subject, headers["Nats-Msg-Id"], msgspec.json.decode(payload, type=ChainEvent)))
        return None


def settings(path: Path) -> LinkSettings:
    return LinkSettings(
        data_dir=str(path), map_size=16 << 20, time_zone="America/Denver", chain="green", store_id="north",
        nats_url="nats://127.0.0.1:1", poll_seconds=0.01,
    )  # fmt: skip


async def ship_until(link: Link, js: FakeJetStream, done: Any, timeout: float = 5) -> None:
    task = asyncio.create_task(link.ship(js))
    try:
        async with asyncio.timeout(timeout):
            while not done():
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_resumes_after_the_acknowledged_position_and_keeps_it_through_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    data = tmp_path / "store"
    make_store(data, 5)
    save_position(data, Position(seq=2))
    link = Link(settings(data))
    js = FakeJetStream(fail_first=1)  # the first try fails: nothing may be marked acknowledged
    asyncio.run(ship_until(link, js, lambda: link.pos.seq == 5))
    ids = [mid for _, mid, _ in js.sent]
    # the failed round is sent again whole, with the same message ids (JetStream drops what it already has)
    assert ids[-3:] == ["north:3", "north:4", "north:5"] and set(ids) == {"north:3", "north:4", "north:5"}
    assert {subject for subject, _, _ in js.sent} == {"chain.green.north.events"}
    assert all(e.action == "drawer_deposit" and e.hash for _, _, e in js.sent)
    assert load_position(data).seq == 5  # durable: a restart resumes here
    said = [json.loads(line) for line in out.getvalue().splitlines()]
    assert any(m["t"] == "link" and not m["up"] for m in said)
    assert said[-1]["t"] == "acked" and said[-1]["seq"] == 5
    link.store.close()


def test_a_log_shorter_than_the_acknowledged_position_is_not_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    data = tmp_path / "store"
    make_store(data, 3)
    save_position(data, Position(seq=9))  # HQ has 9 events; the restored store has 3
    link = Link(settings(data))
    js = FakeJetStream()
    asyncio.run(ship_until(link, js, lambda: "restored" in out.getvalue()))
    assert js.sent == [] and load_position(data).seq == 9
    link.store.close()
