"""Supervision under a mock clock (no threads here, so autojump is safe)."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
import trio

from hub.actor import Call, Mailbox, serve_mailbox
from hub.metrics import Metrics
from hub.supervisor import ChildSpec, Escalation, Supervisor, supervise


async def test_restart_with_backoff_then_recover(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []

    async def flaky(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) <= 3:
            raise RuntimeError("device went away")
        await trio.sleep_forever()

    async with trio.open_nursery() as n:
        await n.start(
            lambda task_status: supervise(
                ChildSpec(name="flaky", run=flaky, max_restarts=5, window=60, backoff=1.0),
                task_status=task_status,
            )
        )
        await trio.sleep(100)
        n.cancel_scope.cancel()
    assert len(starts) == 4
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == pytest.approx([1.0, 2.0, 4.0])  # exponential backoff


async def test_escalates_after_intensity_window(autojump_clock: trio.testing.MockClock) -> None:
    runs = 0

    async def always_fails(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        raise ValueError("bad")

    metrics = Metrics()
    with pytest.RaisesGroup(pytest.RaisesExc(Escalation, match="failed 4 times")):
        async with trio.open_nursery() as n:
            await n.start(
                lambda task_status: supervise(
                    ChildSpec(name="bad", run=always_fails, max_restarts=3, window=10, backoff=0.1),
                    metrics=metrics,
                    task_status=task_status,
                )
            )
    assert runs == 4  # 1 run + 3 restarts, then the parent hears it
    assert metrics.actor_restarts.labels("bad")._value.get() == 4


async def test_failures_outside_window_do_not_escalate(autojump_clock: trio.testing.MockClock) -> None:
    runs = 0

    async def fails_rarely(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        await trio.sleep(30)  # longer than the window between failures
        raise ValueError("occasional")

    async with trio.open_nursery() as n:
        await n.start(
            lambda task_status: supervise(
                ChildSpec(name="rare", run=fails_rarely, max_restarts=1, window=10, backoff=0.1),
                task_status=task_status,
            )
        )
        await trio.sleep(200)
        n.cancel_scope.cancel()
    assert runs >= 6


async def test_start_failure_is_explicit() -> None:
    async def broken(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise OSError("port busy")

    with pytest.RaisesGroup(pytest.RaisesExc(OSError, match="port busy"), flatten_subgroups=True):
        async with trio.open_nursery() as n:
            await n.start(
                lambda task_status: supervise(ChildSpec(name="b", run=broken), task_status=task_status)
            )


async def test_cancellation_is_never_swallowed(autojump_clock: trio.testing.MockClock) -> None:
    async def forever(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    with trio.move_on_after(5) as scope:
        async with trio.open_nursery() as n:
            await n.start(
                lambda task_status: supervise(ChildSpec(name="f", run=forever), task_status=task_status)
            )
    assert scope.cancelled_caught


async def test_poison_message_quarantined_after_two_crashes_and_siblings_unaffected(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics()
    handled: list[str] = []
    sibling_ticks = 0
    poison_attempts = 0
    box: Mailbox[Call] = Mailbox("register:R1", 16, metrics=metrics)

    async def handle(call: Call) -> None:
        nonlocal poison_attempts
        if call.payload == "poison":
            poison_attempts += 1
            raise KeyError("bad package record")
        handled.append(call.payload)
        call.reply(call.payload.upper())

    async def register_actor(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await serve_mailbox(box, handle)

    async def sibling(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal sibling_ticks
        task_status.started()
        while True:
            sibling_ticks += 1
            await trio.sleep(0.01)

    async with trio.open_nursery() as n:
        sup = Supervisor(n, metrics=metrics)
        await sup.start(ChildSpec(name="register:R1", run=register_actor, backoff=0.01))
        await sup.start(ChildSpec(name="register:R2", run=sibling))
        assert await box.call("before") == "BEFORE"
        ticks_before = sibling_ticks
        with pytest.raises(Exception, match="set aside"):
            await box.call("poison")
        assert await box.call("after") == "AFTER"  # the actor lives on and serves the next message
        await trio.sleep(1)
        assert sibling_ticks > ticks_before + 50  # the sibling never stopped
        assert sup.children["register:R2"].restarts == 0
        n.cancel_scope.cancel()
    assert poison_attempts == 2  # delivered once more after the first crash, then quarantined
    assert handled == ["before", "after"]
    assert len(box.quarantined) == 1 and "KeyError" in box.quarantined[0].error
    assert metrics.quarantined.labels("register:R1")._value.get() == 1


async def test_non_critical_child_is_parked_not_escalated(autojump_clock: trio.testing.MockClock) -> None:
    runs: list[float] = []
    sibling_alive = 0

    async def hopeless(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        task_status.started()
        raise ValueError("bad record")

    async def sibling(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal sibling_alive
        task_status.started()
        while True:
            sibling_alive += 1
            await trio.sleep(1)

    metrics = Metrics()
    async with trio.open_nursery() as n:
        sup = Supervisor(n, park_seconds=60, metrics=metrics)
        await sup.start(ChildSpec(name="cash-flags", run=hopeless, max_restarts=2, window=10, backoff=0.1))
        await sup.start(ChildSpec(name="register:R1", run=sibling))
        await trio.sleep(30)
        assert len(runs) == 3 and sup.children["cash-flags"].parked  # gave up: parked, nothing escalated
        assert not sup.all_running()  # healthz shows it
        # ActorDown reads these: down and parked
        assert metrics.actor_up.labels("cash-flags")._value.get() == 0
        assert metrics.actor_parked.labels("cash-flags")._value.get() == 1
        assert metrics.actor_parked.labels("register:R1")._value.get() == 0
        await trio.sleep(60)
        assert len(runs) > 3  # tried again after the park
        assert sibling_alive >= 89
        n.cancel_scope.cancel()


# a licence scan (AAMVA PDF417 text) and a witness PIN: none of it may reach a log line or the store
LICENCE_NUMBER, SURNAME, GIVEN, BIRTH, STREET = (
    "D7391024",
    "JOHNSTONE",
    "MARGARET",
    "02141987",
    "742 EVERGREEN",
)
LICENCE_SCAN = (
    "@\n\x1e\rANSI 636014080102DL00410279ZC03200024DL"
    f"DAQ{LICENCE_NUMBER}\nDCS{SURNAME}\nDAC{GIVEN}\nDBB{BIRTH}\nDAG{STREET} TER\nDAISACRAMENTO\nDAJCA\n"
)
WITNESS_PIN = "73915804"  # long enough never to occur by chance in a hex hash of the store
SECRETS = (LICENCE_NUMBER, SURNAME, GIVEN, BIRTH, STREET, WITNESS_PIN)


async def test_crashed_licence_scan_and_witness_pin_leave_nothing_in_logs_or_store(
    hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.access import HandlerSpec
    from hub.commands import Request
    from hub.logs import JsonFormatter
    from hub.sale.protocol import OpenDrawer, Scan

    async def crash_quoting_its_input(req: Request, msg: Any) -> None:
        # the worst case: a bug whose exception text quotes the very data that broke it
        raise ValueError(f"cannot handle {msg!r}")

    for cls in (Scan, OpenDrawer):
        hub.services.handlers.replace(
            cls, HandlerSpec(crash_quoting_its_input, "register", False, None, False)
        )
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        actor = hub.registers["R1"]
        for msg in (
            Scan(id="scan-1", data=LICENCE_SCAN),
            OpenDrawer(id="drawer-1", counted={"B20": 5}, witness="tom", witness_pin=WITNESS_PIN),
        ):
            with pytest.raises(Exception, match="set aside"):
                await actor.mailbox.call(Request(hub=hub, msg=msg, register_id="R1", session=None))
        with trio.fail_after(10):
            while hub.store.count("quarantine") < 2:
                await trio.sleep(0.02)
    finally:
        root.removeHandler(handler)

    logged = lines.getvalue()
    assert "quarantined" in logged and "crashed" in logged  # the crashes were logged...
    for secret in SECRETS:
        assert secret not in logged, f"{secret!r} in the logs"  # ...without the data
    # every table of the store, raw: the quarantine records and their audit entries included
    with hub.store.read() as txn:
        stored = b"".join(
            bytes(k) + bytes(v) for table in hub.store.tables for k, v in txn.cursor(db=hub.store.db(table))
        )
    for secret in SECRETS:
        assert secret.encode() not in stored, f"{secret!r} in the store"
    # what is kept still tells a manager what happened: the type, the register, the shape, the error's place
    scan, drawer = hub.quarantine[-2:]
    assert scan.message.startswith("Scan register=R1 ") and '"data":"[' in scan.message
    assert drawer.message.startswith("OpenDrawer register=R1 ")
    assert '"witness_pin":"[redacted]"' in drawer.message and '"B20":5' in drawer.message
    assert scan.error.startswith("ValueError at test_supervisor.py:")


async def test_quarantine_records_from_before_redaction_keep_only_their_types(
    hub_factory: Any, config: Any
) -> None:
    from datetime import UTC, datetime

    from hub.actor import QuarantinedMessage
    from hub.store.env import Store, decode, put
    from hub.store.keys import u64

    legacy = QuarantinedMessage(
        actor="register:R1",
        at=datetime.now(UTC),
        message=(
            "Call(Request(hub=<hub.app.Hub object at 0x7f>, msg=OpenDrawer(id='d-1', counted={'B20': 5}, "
            f"witness='tom', witness_pin='{WITNESS_PIN}'), register_id='R1', session=StaffSession("
            f"staff_id='maria', name='Maria Manager', token_hash=b'{LICENCE_NUMBER}')))"
        ),
        error=f"KeyError: '{LICENCE_NUMBER}'",
    )
    store = Store(config.data_dir)
    with store.env.begin(write=True) as txn:
        put(txn, store, "quarantine", u64(1), legacy)
    store.close()
    hub = await hub_factory(config)
    with hub.store.read() as txn:
        raw = bytes(txn.get(u64(1), db=hub.store.db("quarantine")))
    assert WITNESS_PIN.encode() not in raw and LICENCE_NUMBER.encode() not in raw and b"Maria" not in raw
    q = decode(raw, QuarantinedMessage)
    assert q.redacted and q.message.startswith("OpenDrawer ") and q.error == "KeyError"
