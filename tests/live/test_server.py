"""The live server over a real socket: what the sans-I/O session decides, executed by hub/live/server.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from hub.app import Hub
from hub.client import connect
from hub.errors import StoreUnavailable
from tests.conftest import DEMO_PAIRING, PINS, ws_url


async def test_retries_waiting_for_a_failed_attempt_apply_the_id_once(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three copies of one id at once; the first attempt's commit fails (nothing stored). The two copies
    that waited for it are woken together: one applies it, the other waits again and gets its reply."""
    real_write = hub.writer.write
    failed = []

    async def write_failing_once(fn: Any, *, label: str = "write") -> Any:
        if label == "ReportIncident" and not failed:
            failed.append(label)
            await trio.sleep(0.3)  # the copies arrive and wait for this attempt meanwhile
            raise StoreUnavailable("The store is not writable right now.")
        return await real_write(fn, label=label)

    monkeypatch.setattr(hub.writer, "write", write_failing_once)
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("ana", PINS["ana"])
            frame = json.dumps({"type": "report_incident", "id": "inc-9", "category": "a", "description": "b"})
            for _ in range(3):
                await c.send_raw(frame)
            while len([f for f in c.unmatched if f.get("id") == "inc-9"]) < 3:
                await trio.sleep(0.01)
    replies = [f for f in c.unmatched if f.get("id") == "inc-9"]
    assert [r["type"] for r in replies] == ["error", "ok", "ok"], replies
    assert replies[0]["code"] == "store_unavailable" and replies[1] == replies[2]
    assert failed and hub.store.count("incidents") == 1  # applied once, not once per waiting copy
    assert hub.replies.in_flight == {}
