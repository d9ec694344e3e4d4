"""The live server over a real socket: what the sans-I/O session decides, executed by hub/live/server.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from hub.actor import Call, Mailbox
from hub.app import Hub
from hub.client import connect
from hub.errors import NotAuthenticated, StoreUnavailable
from hub.live.frames import ReportIncident
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
            frame = json.dumps(
                {"type": "report_incident", "id": "inc-9", "category": "a", "description": "b"}
            )
            for _ in range(3):
                await c.send_raw(frame)
            while len([f for f in c.unmatched if f.get("id") == "inc-9"]) < 3:
                await trio.sleep(0.01)
    replies = [f for f in c.unmatched if f.get("id") == "inc-9"]
    assert [r["type"] for r in replies] == ["error", "ok", "ok"], replies
    assert replies[0]["code"] == "store_unavailable" and replies[1] == replies[2]
    assert failed and hub.store.count("incidents") == 1  # applied once, not once per waiting copy
    assert hub.replies.in_flight == {}


async def test_a_device_acts_for_whoever_is_logged_in_and_an_ended_session_s_command_is_refused(
    hub: Hub,
) -> None:
    """A serial device's gate is its register (``device_request``); the actor does not decide again, it only
    refuses a command whose staff session ended while it waited in the mailbox."""
    actor = hub.registers["R1"]
    msg = ReportIncident(id="dev-1", category="scanner", description="beeps twice")
    with pytest.raises(NotAuthenticated) as e:
        actor.device_request(msg)  # nobody logged in at the register
    assert e.value.code == "not_logged_in"
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("ana", PINS["ana"])
            req = actor.device_request(msg)
            assert req.session is actor.session and req.session is not None and req.session.staff_id == "ana"
            await c.request("logout")  # ends the session while the device's request waits
            with pytest.raises(NotAuthenticated) as e:
                await actor.mailbox.call(req, timeout=10)
            assert e.value.code == "not_logged_in"
    assert hub.store.count("incidents") == 0


async def test_a_call_stays_in_progress_until_the_actor_answers_not_until_its_caller_gives_up() -> None:
    """What keeps an id in flight (hub/live/server.py): a retry after a timeout or a reconnect must still
    wait for the first attempt, queued in the mailbox."""
    mailbox: Mailbox[Call] = Mailbox("test", 4)
    done: list[str] = []
    with pytest.raises(trio.TooSlowError):
        await mailbox.call("first", timeout=0.05, on_done=lambda: done.append("first"))
    assert done == []  # its caller gave up; the actor has not answered: still in progress
    queued = await mailbox.receive()
    assert queued.payload == "first" and not queued.redelivered
    queued.reply(None)
    queued.reply(None)
    assert done == ["first"]  # once, when answered
    # a call that never reached the actor (nobody receives on a mailbox of size 0) ends at once
    unbuffered: Mailbox[Call] = Mailbox("test0", 0)
    with pytest.raises(trio.TooSlowError):
        await unbuffered.call("lost", timeout=0.05, on_done=lambda: done.append("lost"))
    assert done == ["first", "lost"]
