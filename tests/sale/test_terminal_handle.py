"""The hub's handle on a card terminal (hub/devices.py): when the hub stops waiting for a charge — too slow,
or ``pay`` cancelled — it asks the terminal to cancel, and a result that arrives afterwards (or was already
on its way) goes to the orphan handler, which voids an approval (hub/sale/reversals.py)."""

from __future__ import annotations

import pytest
import trio

from hub.devices import TerminalHandle
from hub.domain import devices as dev


def approved(reference: str) -> dev.PaymentResult:
    return dev.PaymentResult(device_id="t1", reference=reference, outcome="approved", amount_cents=500)


async def test_cancelled_charge_sends_cancel_and_a_late_approval_is_orphaned() -> None:
    send, inbox = trio.open_memory_channel[object](8)
    handle = TerminalHandle("t1", send)
    handle.up = True
    orphans: list[dev.PaymentResult] = []
    handle.on_orphan = orphans.append
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            n.start_soon(handle.charge, 500, "C1")
            assert isinstance(await inbox.receive(), dev.Charge)
            n.cancel_scope.cancel()  # pay cancelled while the customer is at the PIN pad
        assert await inbox.receive() == dev.CancelCharge(reference="C1")
    handle.resolve(approved("C1"))  # the customer had tapped already
    assert orphans == [approved("C1")]


async def test_too_slow_charge_sends_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    send, inbox = trio.open_memory_channel[object](8)
    handle = TerminalHandle("t1", send, dev.PaymentTerminalConfig(device_id="t1", address="h:1"))
    handle.up = True
    orphans: list[dev.PaymentResult] = []
    handle.on_orphan = orphans.append
    monkeypatch.setattr(TerminalHandle, "wait_s", property(lambda self: 0.2))
    with trio.fail_after(5), pytest.raises(trio.TooSlowError):
        await handle.charge(500, "C2")
    assert isinstance(inbox.receive_nowait(), dev.Charge)
    assert inbox.receive_nowait() == dev.CancelCharge(reference="C2")
    handle.resolve(approved("C2"))
    assert orphans == [approved("C2")]
