"""Every scale protocol over a real pseudo-terminal: simulator on the master, scale actor on the slave."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from actors import scale as scale_actor
from drivers.errors import DeviceDisconnected
from drivers.serial_port import SerialSettings, SerialTransport
from drivers.sim.pty_device import PtyDevice
from drivers.sim.scale import ScaleSimulator
from hub.domain.devices import (
    DeviceCommandResult,
    DeviceHealth,
    ScaleConfig,
    ScaleReading,
    TareScale,
    ZeroScale,
)

PROTOCOLS = ["ad", "mt-sics", "nci", "ohaus"]


class Harness:
    def __init__(self, sim: ScaleSimulator) -> None:
        self.sim = sim
        self.out_send, self.out = trio.open_memory_channel(1000)
        self.inbox, self.inbox_recv = trio.open_memory_channel(10)
        self.seen: list = []

    async def publish(self, message) -> None:
        self.seen.append(message)
        await self.out_send.send(message)

    async def wait_for(self, predicate, what: str):
        with trio.fail_after(5):  # absolute limit on every wait
            while True:
                message = await self.out.receive()
                if predicate(message):
                    return message

    async def reading(self, predicate):
        return await self.wait_for(lambda m: isinstance(m, ScaleReading) and predicate(m), "reading")

    async def health(self, predicate):
        return await self.wait_for(lambda m: isinstance(m, DeviceHealth) and predicate(m), "health")


async def start(nursery: trio.Nursery, protocol: str, **config) -> Harness:
    sim = ScaleSimulator(protocol)
    await nursery.start(sim.run)
    h = Harness(sim)
    cfg = ScaleConfig(
        device_id=f"scale-{protocol}",
        port=sim.path,
        protocol=protocol,
        certificate="NTEP CC 20-045",
        poll_interval_s=0.05,
        reply_timeout_s=0.5,
        **config,
    )
    await nursery.start(scale_actor.run, cfg, h.publish, h.inbox_recv)
    return h


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stable_weight_is_sellable_and_carries_certificate(protocol):
    async with trio.open_nursery() as nursery:
        h = await start(nursery, protocol)
        h.sim.set_weight(3_540)
        r = await h.reading(lambda r: r.weight_mg == 3_540 and r.stable)
        assert r.state == "stable"
        assert r.sellable
        assert r.certificate == "NTEP CC 20-045"
        assert r.device_id == f"scale-{protocol}"
        assert any(isinstance(m, DeviceHealth) and m.up for m in h.seen)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_motion_is_never_stable(protocol):
    async with trio.open_nursery() as nursery:
        h = await start(nursery, protocol)
        h.sim.set_weight(1_000)
        await h.reading(lambda r: r.weight_mg == 1_000 and r.stable)
        h.sim.set_weight(3_520, motion=True)
        r = await h.reading(lambda r: r.weight_mg == 3_520)
        assert r.state == "motion"
        assert not r.stable
        assert not r.sellable
        # while it moves, every reading stays unsellable; when it settles, it becomes stable
        with trio.move_on_after(0.3):
            while True:
                r = await h.reading(lambda r: True)
                assert not r.sellable
        h.sim.set_motion(False)
        await h.reading(lambda r: r.weight_mg == 3_520 and r.sellable)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_overload(protocol):
    async with trio.open_nursery() as nursery:
        h = await start(nursery, protocol)
        h.sim.set_weight(5_000)
        await h.reading(lambda r: r.stable)
        h.sim.set_overload(True)
        r = await h.reading(lambda r: r.state == "overload")
        assert not r.stable and not r.sellable
        h.sim.set_overload(False)
        await h.reading(lambda r: r.state == "stable" and r.weight_mg == 5_000)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_capacity_from_config_turns_heavy_reading_into_overload(protocol):
    async with trio.open_nursery() as nursery:
        h = await start(nursery, protocol, capacity_mg=10_000)
        h.sim.set_weight(10_010)
        r = await h.reading(lambda r: r.weight_mg == 10_010)
        assert r.state == "overload" and not r.sellable
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_garbage_is_counted_and_ignored(protocol):
    async with trio.open_nursery() as nursery:
        h = await start(nursery, protocol)
        h.sim.set_weight(2_000)
        await h.reading(lambda r: r.stable and r.weight_mg == 2_000)
        h.sim.write_garbage(b"\xff\xfe\x00\x13garbage\r\n\x7f#*!\r\n\n\x03" + bytes(range(0x80, 0x100)))
        health = await h.health(lambda m: m.errors >= 1)
        assert health.up  # noise does not take a talking scale down
        h.sim.set_weight(2_500)
        await h.reading(lambda r: r.stable and r.weight_mg == 2_500)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_unplug_goes_down_and_replug_comes_back_without_restart(protocol):
    async with trio.open_nursery() as nursery:
        h = await start(nursery, protocol)
        h.sim.set_weight(1_230)
        await h.reading(lambda r: r.stable and r.weight_mg == 1_230)
        h.sim.unplug()
        down = await h.health(lambda m: not m.up)
        assert down.errors >= 1
        assert not await trio.Path(h.sim.path).exists()
        await trio.sleep(0.3)  # a few failed reopens while the cable is out
        h.sim.set_weight(4_560)
        h.sim.replug()
        up = await h.health(lambda m: m.up)
        assert up.reconnects >= 1
        await h.reading(lambda r: r.stable and r.weight_mg == 4_560)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_silent_scale_is_reported_down_then_up(protocol):
    async with trio.open_nursery() as nursery:
        h = await start(nursery, protocol)
        h.sim.set_weight(700)
        await h.reading(lambda r: r.stable)
        h.sim.silent = True
        down = await h.health(lambda m: not m.up)
        assert down.detail == "not answering"
        h.sim.silent = False
        await h.health(lambda m: m.up)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_zero_and_tare(protocol):
    async with trio.open_nursery() as nursery:
        h = await start(nursery, protocol)
        h.sim.set_weight(12_000)  # the empty jar
        await h.reading(lambda r: r.stable and r.weight_mg == 12_000)
        await h.inbox.send(TareScale(request_id="t1"))
        result = await h.wait_for(lambda m: isinstance(m, DeviceCommandResult), "tare result")
        assert result.ok and result.command == "tare" and result.request_id == "t1"
        await h.reading(lambda r: r.stable and r.weight_mg == 0)
        h.sim.set_weight(15_500)  # flower in the jar: net weight only
        await h.reading(lambda r: r.stable and r.weight_mg == 3_500)
        await h.inbox.send(ZeroScale(request_id="z1"))
        result = await h.wait_for(lambda m: isinstance(m, DeviceCommandResult), "zero result")
        assert result.ok and result.command == "zero"
        await h.reading(lambda r: r.stable and r.weight_mg == 0)
        nursery.cancel_scope.cancel()


async def test_zero_refused_in_motion_reports_failure():
    async with trio.open_nursery() as nursery:
        h = await start(nursery, "mt-sics")
        h.sim.set_weight(1_000, motion=True)
        await h.reading(lambda r: r.weight_mg == 1_000)
        await h.inbox.send(ZeroScale())
        result = await h.wait_for(lambda m: isinstance(m, DeviceCommandResult), "zero result")
        assert not result.ok and "not executable" in result.detail
        assert h.sim.zero_count == 0
        nursery.cancel_scope.cancel()


async def test_zero_while_unplugged_fails_fast():
    async with trio.open_nursery() as nursery:
        h = await start(nursery, "nci")
        h.sim.set_weight(1_000)
        await h.reading(lambda r: r.stable)
        h.sim.unplug()
        await h.health(lambda m: not m.up)
        await h.inbox.send(ZeroScale())
        result = await h.wait_for(lambda m: isinstance(m, DeviceCommandResult), "zero result")
        assert not result.ok and result.detail == "scale is offline"
        nursery.cancel_scope.cancel()


async def test_missing_port_is_down_not_a_crash():
    async with trio.open_nursery() as nursery:
        h = Harness(None)  # type: ignore[arg-type]
        cfg = ScaleConfig(device_id="s", port="/dev/serial/by-id/usb-AND-nope", protocol="ad")
        await nursery.start(scale_actor.run, cfg, h.publish, h.inbox_recv)
        health = await h.health(lambda m: not m.up)
        assert "cannot open" in health.detail
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- the transport itself


async def test_transport_partial_writes_and_hangup():
    sim = PtyDevice("raw-device")  # records what it gets, answers nothing
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        with trio.fail_after(5):
            port = await SerialTransport.open(SerialSettings(port=sim.path, bytesize=7, parity="E"))
            payload = bytes(range(256)) * 1024  # far beyond the pty buffer: forces partial writes
            await port.send_all(payload)
            while len(sim.received) < len(payload):
                await trio.sleep(0.01)
            assert bytes(sim.received) == payload
            sim.write(b"hello")
            assert await port.receive_some() == b"hello"
            sim.unplug()
            with pytest.raises(DeviceDisconnected):
                await port.receive_some()
            await port.aclose()
        nursery.cancel_scope.cancel()


async def test_transport_socket_url():
    async def device(stream: trio.SocketStream) -> None:
        data = await stream.receive_some()
        await stream.send_all(b"echo:" + data)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, device, 0, host="127.0.0.1"))
        port_no = listeners[0].socket.getsockname()[1]
        with trio.fail_after(5):
            port = await SerialTransport.open(SerialSettings(port=f"socket://127.0.0.1:{port_no}"))
            await port.send_all(b"W\r")
            got = b""
            while len(got) < 7:
                got += await port.receive_some()
            assert got == b"echo:W\r"
            with pytest.raises(DeviceDisconnected):
                await port.receive_some()
            await port.aclose()
        nursery.cancel_scope.cancel()


async def test_open_refuses_bad_path():
    with trio.fail_after(5), pytest.raises(DeviceDisconnected, match="cannot open"):
        await SerialTransport.open(SerialSettings(port="/nonexistent/ttyUSB9"))


async def test_ad_zero_in_motion_waits_for_completion_and_reports_e11():
    # FX-i manual §15-2: ACK on receipt, then EC,E11 when the balance could not settle.
    async with trio.open_nursery() as nursery:
        h = await start(nursery, "ad")
        h.sim.set_weight(1_000, motion=True)
        await h.reading(lambda r: r.weight_mg == 1_000)
        await h.inbox.send(ZeroScale(request_id="z"))
        result = await h.wait_for(lambda m: isinstance(m, DeviceCommandResult), "zero result")
        assert not result.ok and "E11" in result.detail
        assert h.sim.zero_count == 0
        nursery.cancel_scope.cancel()


async def test_nci_below_range_and_documented_frames_from_the_simulator():
    async with trio.open_nursery() as nursery:
        h = await start(nursery, "nci")
        h.sim.set_weight(0)
        await h.reading(lambda r: r.weight_mg == 0 and r.stable)
        h.sim.set_underload(True)
        r = await h.reading(lambda r: r.state == "underload")
        assert not r.sellable
        assert b"\r\n" in bytes(h.sim.weight_frame())  # status on its own line, as the manuals show
        nursery.cancel_scope.cancel()
