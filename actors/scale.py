"""Scale actor: one legal-for-trade scale on a serial port.

Opens the port, polls or streams as the protocol wants, publishes ``ScaleReading`` (on change and at
least once a second) and ``DeviceHealth``; zero and tare arrive in the inbox and are answered with a
``DeviceCommandResult``. An unplugged, silent or garbage-talking scale never raises out of here: it is
reported down (or its errors counted) and the port is reopened with backoff until it is back.
"""

from __future__ import annotations

import logging

import trio

from drivers.errors import DeviceError, DeviceTimeout
from drivers.health import HealthTracker, Publish
from drivers.scales import CommandReply, FrameError, ScaleCodec, WeightFrame, codec_for
from drivers.serial_port import Backoff, SerialSettings, SerialTransport
from hub.domain.devices import (
    DeviceCommandResult,
    ScaleConfig,
    ScaleReading,
    TareScale,
    ZeroScale,
    utc_now,
)

log = logging.getLogger("storehub.devices.scale")

READING_REFRESH_S = 1.0  # republish an unchanged reading so the register can tell it is fresh


def serial_settings(config: ScaleConfig, codec: ScaleCodec) -> SerialSettings:
    d = codec.serial_defaults
    return SerialSettings(
        port=config.port,
        baudrate=config.baudrate or d.baudrate,
        bytesize=config.bytesize or d.bytesize,
        parity=config.parity or d.parity,
        stopbits=config.stopbits or d.stopbits,
    )


class _Scale:
    def __init__(self, config: ScaleConfig, publish: Publish) -> None:
        self.config = config
        self.publish = publish
        self.codec = codec_for(config.protocol)
        self.settings = serial_settings(config, self.codec)
        mode = config.mode or self.codec.default_mode
        self.mode = "stream" if mode == "stream" and self.codec.stream_request else "poll"
        self.health = HealthTracker(config.device_id, "scale", publish)
        self.transport: SerialTransport | None = None
        self.last_frame_at = 0.0
        self._last: tuple[int, str] | None = None
        self._last_published_at = -float("inf")
        self._replies_send, self._replies = trio.open_memory_channel[CommandReply](8)
        self._sessions = 0

    # ---------------------------------------------------------------- the port

    async def device_loop(self) -> None:
        backoff = Backoff(initial=0.2, maximum=5.0)
        while True:
            try:
                transport = await SerialTransport.open(self.settings)
            except DeviceError as exc:
                await self.health.set_down(exc.message)
                await trio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self._sessions += 1
            if self._sessions > 1:
                self.health.reconnects += 1
            self.codec.reset()
            self.transport = transport
            try:
                await self._session(transport)
            except DeviceError as exc:
                await self.health.set_down(exc.message)
            finally:
                self.transport = None
                self._last = None
                with trio.CancelScope(shield=True):
                    await transport.aclose()
            await trio.sleep(backoff.next_delay())

    async def _session(self, transport: SerialTransport) -> None:
        self.last_frame_at = trio.current_time()
        failure: list[DeviceError] = []

        async def guarded(fn, nursery: trio.Nursery) -> None:
            try:
                await fn(transport)
            except DeviceError as exc:
                failure.append(exc)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(guarded, self._reader, nursery)
            nursery.start_soon(guarded, self._driver, nursery)
        if failure:
            raise failure[0]

    async def _reader(self, transport: SerialTransport) -> None:
        while True:
            data = await transport.receive_some()
            for event in self.codec.feed(data):
                if isinstance(event, WeightFrame):
                    await self._on_weight(event)
                elif isinstance(event, CommandReply):
                    self._alive()
                    try:
                        self._replies_send.send_nowait(event)
                    except trio.WouldBlock:
                        pass  # nobody is waiting for it
                elif isinstance(event, FrameError):
                    # Garbage on the line: counted, shown on the health card, never fatal.
                    self.health.error()
                    log.debug("scale %s: %s %r", self.config.device_id, event.reason, event.raw)

    async def _driver(self, transport: SerialTransport) -> None:
        """Ask for weights (poll) or keep the stream going, and notice a scale that went quiet."""
        if self.mode == "stream":
            await transport.send_all(self.codec.stream_request or b"")
        while True:
            if self.mode == "poll":
                await transport.send_all(self.codec.poll_request)
            await trio.sleep(self.config.poll_interval_s)
            quiet = trio.current_time() - self.last_frame_at
            if quiet > self.config.reply_timeout_s:
                if self.health.up or self.health.detail != "not answering":
                    exc = DeviceTimeout(f"no weight for {quiet:.1f} s")
                    await self.health.set_down("not answering")
                    log.warning("scale %s: %s", self.config.device_id, exc)
                if self.mode == "stream":
                    # A power-cycled balance forgets continuous output; ask again.
                    await transport.send_all(self.codec.stream_request or b"")

    def _alive(self) -> None:
        self.last_frame_at = trio.current_time()
        self.health.reading()

    async def _on_weight(self, frame: WeightFrame) -> None:
        self._alive()
        if not self.health.up:
            await self.health.set_up(f"{self.config.protocol} on {self.config.port}")
        state = frame.state
        weight = frame.weight_mg
        cap = self.config.capacity_mg
        if cap is not None and state in ("stable", "motion") and weight > cap:
            state = "overload"  # beyond Max the scale is not legal for trade, whatever it prints
        now = trio.current_time()
        key = (weight, state)
        if key == self._last and now - self._last_published_at < READING_REFRESH_S:
            return
        self._last, self._last_published_at = key, now
        await self.publish(
            ScaleReading(
                device_id=self.config.device_id,
                weight_mg=weight,
                stable=state == "stable",
                state=state,
                at=utc_now(),
                certificate=self.config.certificate,
                unit_shown=frame.unit,
            )
        )

    # ---------------------------------------------------------------- commands

    async def handle(self, command: object) -> None:
        if isinstance(command, ZeroScale | TareScale):
            kind = "zero" if isinstance(command, ZeroScale) else "tare"
            ok, detail = await self._command(kind)
            await self.publish(
                DeviceCommandResult(
                    device_id=self.config.device_id,
                    command=kind,
                    ok=ok,
                    detail=detail,
                    request_id=command.request_id,
                )
            )
        else:
            log.warning("scale %s: ignoring unknown command %r", self.config.device_id, command)
            await self.publish(
                DeviceCommandResult(
                    device_id=self.config.device_id,
                    command=type(command).__name__,
                    ok=False,
                    detail="a scale does not understand this command",
                )
            )

    async def _command(self, kind: str) -> tuple[bool, str]:
        transport = self.transport
        if transport is None or not self.health.up:
            return False, "scale is offline"
        while True:  # forget answers nobody waited for
            try:
                self._replies.receive_nowait()
            except trio.WouldBlock:
                break
        request = self.codec.zero_request if kind == "zero" else self.codec.tare_request
        self.codec.note_sent(kind)  # type: ignore[arg-type]
        try:
            await transport.send_all(request)
        except DeviceError as exc:
            return False, exc.message
        if not self.codec.acknowledges_commands:
            return True, "sent"
        deadline = trio.current_time() + self.config.reply_timeout_s
        received = False
        while True:
            with trio.move_on_at(deadline):
                reply = await self._replies.receive()
                if reply.command not in (kind, "other"):
                    continue
                if reply.final:
                    return reply.ok, reply.detail
                # Receipt only: the scale answers again when the zero/tare is done (or could not be).
                received = True
                deadline = trio.current_time() + self.config.settle_timeout_s
                continue
            break
        if received:
            return False, "the scale took the command but never said it was done"
        return False, "the scale did not answer"


async def run(
    config: ScaleConfig,
    publish: Publish,
    inbox: trio.abc.ReceiveChannel,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one scale until cancelled or until the inbox is closed."""
    scale = _Scale(config, publish)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scale.device_loop)
        nursery.start_soon(scale.health.run)
        task_status.started()
        async for command in inbox:
            await scale.handle(command)
        nursery.cancel_scope.cancel()
