"""Payment terminal: approve, decline, time out, offline — over real loopback TCP to the simulator."""

from __future__ import annotations

import pytest
import trio

from actors import payment_terminal as payment_actor
from drivers.payment import Approved, Declined, Offline, TcpJsonTerminal, TimedOut
from drivers.sim.payment_terminal import PaymentTerminalSimulator
from hub.domain.devices import (
    CancelCharge,
    Charge,
    DeviceHealth,
    PaymentProgress,
    PaymentResult,
    PaymentTerminalConfig,
    RefundCharge,
    VoidCharge,
)

# --------------------------------------------------------------------------- driver


async def test_driver_approve_decline_and_idempotent_retry():
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(PaymentTerminalSimulator().run)
        term = TcpJsonTerminal(sim.address, connect_timeout_s=1, charge_timeout_s=2)
        with trio.fail_after(5):
            result = await term.charge(6555, "sale-1")
            assert isinstance(result, Approved) and result.amount_cents == 6555 and result.auth_code
            # a retry of the same sale returns the stored result, not a second charge
            again = await term.charge(6555, "sale-1")
            assert again == result
            assert len(sim.results) == 1
            sim.mode = "decline"
            declined = await term.charge(1200, "sale-2")
            assert isinstance(declined, Declined) and declined.reason == "insufficient funds"
            status = await term.status()
            assert status.online and not status.busy
        nursery.cancel_scope.cancel()


async def test_driver_timeout_then_cancel():
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(PaymentTerminalSimulator().run)
        sim.mode = "timeout"
        term = TcpJsonTerminal(sim.address, connect_timeout_s=1, charge_timeout_s=0.3)
        with trio.fail_after(5):
            result = await term.charge(500, "sale-3")
            assert isinstance(result, TimedOut)
            assert (await term.status()).busy
            assert await term.cancel("sale-3")
            while sim.busy:
                await trio.sleep(0.01)
            assert sim.results["sale-3"].result == "cancelled"
        nursery.cancel_scope.cancel()


async def test_driver_offline():
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(PaymentTerminalSimulator().run)
        sim.go_offline()
        await trio.sleep(0.05)
        term = TcpJsonTerminal(sim.address, connect_timeout_s=1, charge_timeout_s=1)
        with trio.fail_after(5):
            result = await term.charge(500, "sale-4")
            assert isinstance(result, Offline)
            assert not (await term.status()).online
        assert sim.charges == []  # nothing reached the terminal: nothing was charged
        nursery.cancel_scope.cancel()


async def test_driver_refuses_non_positive_amount():
    term = TcpJsonTerminal("127.0.0.1:1")
    with pytest.raises(ValueError):
        await term.charge(0, "x")


# --------------------------------------------------------------------------- actor


class Out:
    def __init__(self) -> None:
        self.send, self.recv = trio.open_memory_channel(1000)

    async def publish(self, m) -> None:
        await self.send.send(m)

    async def wait(self, predicate, seconds: float = 5):
        with trio.fail_after(seconds):
            while True:
                m = await self.recv.receive()
                if predicate(m):
                    return m


def result_for(reference: str):
    return lambda m: isinstance(m, PaymentResult) and m.reference == reference


async def start(nursery, **kw):
    sim = await nursery.start(PaymentTerminalSimulator().run)
    out = Out()
    inbox_send, inbox = trio.open_memory_channel(10)
    cfg = PaymentTerminalConfig(
        device_id="pin-1", address=sim.address, connect_timeout_s=0.5, status_interval_s=0.1, **kw
    )
    await nursery.start(payment_actor.run, cfg, out.publish, inbox)
    await out.wait(lambda m: isinstance(m, DeviceHealth) and m.up)
    return sim, out, inbox_send


async def test_actor_approve():
    async with trio.open_nursery() as nursery:
        sim, out, inbox = await start(nursery)
        await inbox.send(Charge(reference="sale-10", amount_cents=4200))
        r = await out.wait(result_for("sale-10"))
        assert r.outcome == "approved" and r.auth_code and r.amount_cents == 4200
        nursery.cancel_scope.cancel()


async def test_actor_decline():
    async with trio.open_nursery() as nursery:
        sim, out, inbox = await start(nursery)
        sim.mode = "decline"
        await inbox.send(Charge(reference="sale-11", amount_cents=4200))
        r = await out.wait(result_for("sale-11"))
        assert r.outcome == "declined" and "insufficient" in r.detail
        nursery.cancel_scope.cancel()


async def test_actor_timeout_cancels_at_terminal():
    async with trio.open_nursery() as nursery:
        sim, out, inbox = await start(nursery, charge_timeout_s=0.3)
        sim.mode = "timeout"
        await inbox.send(Charge(reference="sale-12", amount_cents=4200))
        r = await out.wait(result_for("sale-12"))
        # issue 11: the real outcome is fetched from the terminal after the cancel, not left unknown
        assert r.outcome == "cancelled" and r.recovered
        assert "sale-12" in sim.cancels  # cancelled before the register heard of it
        assert sim.results["sale-12"].result == "cancelled"
        nursery.cancel_scope.cancel()


async def test_actor_cancel_by_register_while_waiting_for_card():
    async with trio.open_nursery() as nursery:
        sim, out, inbox = await start(nursery)
        sim.mode = "timeout"
        await inbox.send(Charge(reference="sale-13", amount_cents=900))
        with trio.fail_after(5):
            while not sim.busy:
                await trio.sleep(0.01)
        await inbox.send(CancelCharge(reference="sale-13"))
        r = await out.wait(result_for("sale-13"))
        assert r.outcome == "cancelled"
        nursery.cancel_scope.cancel()


async def test_actor_offline_during_sale_then_back():
    async with trio.open_nursery() as nursery:
        sim, out, inbox = await start(nursery)
        sim.go_offline()
        await inbox.send(Charge(reference="sale-14", amount_cents=4200))
        r = await out.wait(result_for("sale-14"))
        assert r.outcome == "offline"  # the register is told: cash only
        down = await out.wait(lambda m: isinstance(m, DeviceHealth) and not m.up)
        assert down.kind == "payment_terminal" and "offline" in down.detail
        # the actor is alive and busy-free: a second charge is answered too, and works once it is back
        sim.come_online()
        await out.wait(lambda m: isinstance(m, DeviceHealth) and m.up)
        await inbox.send(Charge(reference="sale-15", amount_cents=4200))
        assert (await out.wait(result_for("sale-15"))).outcome == "approved"
        nursery.cancel_scope.cancel()


async def test_actor_one_charge_at_a_time():
    async with trio.open_nursery() as nursery:
        sim, out, inbox = await start(nursery, charge_timeout_s=0.5)
        sim.mode = "timeout"
        await inbox.send(Charge(reference="a", amount_cents=100))
        await inbox.send(Charge(reference="b", amount_cents=100))
        r = await out.wait(result_for("b"))
        assert r.outcome == "error" and "busy" in r.detail
        a = await out.wait(result_for("a"))
        assert a.outcome == "cancelled" and a.recovered  # timed out, then its real outcome fetched
        nursery.cancel_scope.cancel()


async def test_actor_lost_answer_is_looked_up_not_recharged():
    """The terminal approved but the answer never came back: the actor asks (lookup) and reports the
    approval; the terminal saw one charge."""
    async with trio.open_nursery() as nursery:
        sim, out, inbox = await start(nursery)
        sim.mode = "lose_answer"
        await inbox.send(Charge(reference="sale-16", amount_cents=2500))
        progress = await out.wait(lambda m: isinstance(m, PaymentProgress) and m.state == "recovering")
        assert progress.reference == "sale-16"
        r = await out.wait(result_for("sale-16"))
        assert r.outcome == "approved" and r.recovered and r.auth_code
        assert sim.charges == [("sale-16", 2500)]
        nursery.cancel_scope.cancel()


async def test_actor_void_and_refund():
    async with trio.open_nursery() as nursery:
        sim, out, inbox = await start(nursery)
        await inbox.send(Charge(reference="sale-17", amount_cents=3000))
        assert (await out.wait(result_for("sale-17"))).outcome == "approved"
        await inbox.send(VoidCharge(reference="sale-17", amount_cents=3000))
        v = await out.wait(lambda m: isinstance(m, PaymentResult) and m.operation == "void")
        assert v.outcome == "approved" and sim.voids == ["sale-17"]
        await inbox.send(RefundCharge(reference="ret-1", amount_cents=1200))
        r = await out.wait(lambda m: isinstance(m, PaymentResult) and m.operation == "return")
        assert r.outcome == "approved" and r.reference == "ret-1"
        nursery.cancel_scope.cancel()
