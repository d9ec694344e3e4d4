"""Scanner actor: one serial/CDC barcode and ID scanner.

Frames symbols (``drivers.scanner.ScanFramer``), classifies them by content
(``hub.domain.scan_classify``) and publishes a ``Scan`` for the paired register or picker. A refused
symbol (bad check digit, mangled licence) is still published, with ``valid=False`` and the reason, so
the register can tell the budtender to rescan. Unplugged → health down, reopened with backoff.
"""

from __future__ import annotations

import logging

import trio

from drivers.errors import DeviceError
from drivers.health import HealthTracker, Publish
from drivers.scanner import ScanFramer, decode_symbol
from drivers.serial_port import Backoff, SerialSettings, SerialTransport
from hub.domain.devices import Scan, ScannerConfig, utc_now
from hub.domain.scan_classify import classify

log = logging.getLogger("storehub.devices.scanner")


def _escape(text: str) -> bytes:
    # Config files spell the suffix "\r", "\r\n", "\t" or as text; both arrive here as real characters.
    return text.encode("latin-1")


class _Scanner:
    def __init__(self, config: ScannerConfig, publish: Publish) -> None:
        self.config = config
        self.publish = publish
        self.health = HealthTracker(config.device_id, "scanner", publish)
        self.settings = SerialSettings(
            port=config.port,
            baudrate=config.baudrate,
            bytesize=config.bytesize,
            parity=config.parity,
            stopbits=config.stopbits,
        )

    async def device_loop(self) -> None:
        backoff = Backoff(initial=0.2, maximum=5.0)
        sessions = 0
        while True:
            try:
                transport = await SerialTransport.open(self.settings)
            except DeviceError as exc:
                await self.health.set_down(exc.message)
                await trio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            sessions += 1
            if sessions > 1:
                self.health.reconnects += 1
            # A scanner is silent until something is scanned: an open port is as "up" as it gets.
            await self.health.set_up(f"on {self.config.port}")
            try:
                await self._session(transport)
            except DeviceError as exc:
                await self.health.set_down(exc.message)
            finally:
                with trio.CancelScope(shield=True):
                    await transport.aclose()
            await trio.sleep(backoff.next_delay())

    async def _session(self, transport: SerialTransport) -> None:
        framer = ScanFramer(_escape(self.config.suffix), _escape(self.config.prefix))
        while True:
            data = b""
            if framer.pending:
                with trio.move_on_after(self.config.frame_gap_s):
                    data = await transport.receive_some()
            else:
                data = await transport.receive_some()
            frames = framer.feed(data) if data else framer.flush()
            if framer.dropped:
                self.health.error(framer.dropped)
                framer.dropped = 0
            for frame in frames:
                await self._publish_scan(frame)

    async def _publish_scan(self, frame: bytes) -> None:
        self.health.reading()
        result = classify(decode_symbol(frame))
        if not result.valid:
            log.info("scanner %s: refused %s: %s", self.config.device_id, result.kind, result.reason)
        await self.publish(
            Scan(
                device_id=self.config.device_id,
                kind=result.kind,
                data=result.data,
                symbology=result.symbology,
                valid=result.valid,
                reason=result.reason,
                at=utc_now(),
                paired_with=self.config.paired_with,
            )
        )


async def run(
    config: ScannerConfig,
    publish: Publish,
    inbox: trio.abc.ReceiveChannel,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one scanner until cancelled or the inbox closes. The inbox takes no commands today (a
    scanner is read-only); it exists so every device actor has the same shape."""
    scanner = _Scanner(config, publish)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scanner.device_loop)
        nursery.start_soon(scanner.health.run)
        task_status.started()
        async for command in inbox:
            log.warning("scanner %s: ignoring command %r", config.device_id, command)
        nursery.cancel_scope.cancel()
