"""The live server over a real socket: what the sans-I/O session decides, executed by hub/live/server.py."""

from __future__ import annotations

import json
from dataclasses import replace
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


class _Spawns(trio.abc.Instrument):
    """Counts the tasks started while it is installed."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.names.append(task.name)


async def test_a_register_command_starts_no_task_of_its_own(hub: Hub) -> None:
    """A frame is decided on the connection's reading task, queued in the actor's mailbox and answered from
    the actor's task: 20 commands through the actor start no task (one per message was the old waste)."""
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("ana", PINS["ana"])
            spawns = _Spawns()
            trio.lowlevel.add_instrument(spawns)
            try:
                for i in range(20):
                    assert (await c.request("report_incident", category="a", description=f"b{i}"))["incident"]
                    assert (await c.request("ping"))["server_time"]
            finally:
                trio.lowlevel.remove_instrument(spawns)
    assert len(spawns.names) < 5, spawns.names
    assert hub.store.count("incidents") == 20


async def test_an_answer_later_than_the_deadline_is_a_timeout_and_the_late_answer_goes_nowhere(
    hub: Hub,
) -> None:
    """The connection's deadline watcher answers ``timeout`` when the actor has not answered in time; the id
    stays in flight until the actor has, and the actor's late answer is not sent (the client was told)."""
    spec = hub.services.handlers[ReportIncident]
    release = trio.Event()
    started = trio.Event()

    async def slow(req: Any, msg: ReportIncident) -> Any:
        if msg.id == "slow-1":
            started.set()
            await release.wait()
        return await spec.fn(req, msg)

    hub.services.handlers.replace(ReportIncident, replace(spec, fn=slow, timeout_s=0.2))
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("ana", PINS["ana"])
            frame = await c.request_frame("report_incident", id="slow-1", category="a", description="b")
            assert frame["type"] == "error" and frame["code"] == "timeout", frame
            assert started.is_set() and ("R1", "slow-1") in hub.replies.in_flight  # still being applied
            assert (await c.request("ping"))["server_time"]  # the connection serves on meanwhile
            release.set()
            # queued behind slow-1 at the actor: by its answer, slow-1's late answer was sent if it ever is
            nxt = await c.request("report_incident", id="next-1", category="a", description="c")
            assert nxt["incident"]
            assert ("R1", "slow-1") not in hub.replies.in_flight
            # a retry of the id is answered from what the first attempt stored, not applied again
            again = await c.request_frame("report_incident", id="slow-1", category="a", description="b")
            assert again["type"] == "ok", again
    assert [f for f in c.unmatched if f.get("id") == "slow-1"] == []
    assert hub.store.count("incidents") == 2


async def test_a_submitted_call_is_answered_to_its_callback_unless_abandoned() -> None:
    """``Mailbox.submit``: nothing waits; the answer goes to ``on_answer`` in the actor's task, a caller's
    failure there never reaches the actor, and ``on_done`` runs when answered whatever the caller did."""
    mailbox: Mailbox[Call] = Mailbox("test", 1)
    answers: list[Any] = []
    done: list[str] = []

    def broken(call: Call) -> None:
        raise RuntimeError("the caller's bug")

    first = Call("a", lambda: done.append("a"), on_answer=lambda c: answers.append(c.result()))
    assert mailbox.submit(first)
    assert not mailbox.submit(Call("full"))  # the mailbox holds one: the caller must deliver() it
    (await mailbox.receive()).reply("A")
    assert answers == ["A"] and done == ["a"]

    abandoned = Call("b", lambda: done.append("b"), on_answer=lambda c: answers.append(c.result()))
    assert mailbox.submit(abandoned)
    abandoned.abandon()
    (await mailbox.receive()).reply("B")
    assert answers == ["A"] and done == ["a", "b"]  # nobody told, still no longer in progress

    crashing = Call("c", lambda: done.append("c"), on_answer=broken)
    assert mailbox.submit(crashing)
    (await mailbox.receive()).fail(NotAuthenticated("no"))  # the callback's error is logged, not raised
    assert done == ["a", "b", "c"]
    with pytest.raises(NotAuthenticated):
        crashing.result()


async def test_a_call_that_finds_the_mailbox_full_until_its_deadline_is_never_in_progress() -> None:
    mailbox: Mailbox[Call] = Mailbox("test", 1)
    done: list[str] = []
    assert mailbox.submit(Call("first"))
    late = Call("late", lambda: done.append("late"), deadline=trio.current_time() + 0.05)
    await mailbox.deliver(late)  # no room before its deadline
    assert done == ["late"]
    assert (await mailbox.receive()).payload == "first" and mailbox.depth() == 0
