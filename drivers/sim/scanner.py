"""A simulated serial (CDC-ACM) barcode / ID scanner on a pseudo-terminal.

Control API:
    await scan(payload, chunk=64, delay_s=0.002)   emit one symbol + the programmed suffix, in chunks
                                                   (a 9600-baud line delivers ~1 byte per ms)
    scan_now(payload)                               emit at once, in one write
    unplug() / replug()
"""

from __future__ import annotations

import trio

from drivers.sim.pty_device import PtyDevice


class ScannerSimulator(PtyDevice):
    def __init__(
        self,
        *,
        name: str = "scanner",
        suffix: bytes = b"\r",
        prefix: bytes = b"",
        link_dir: str | None = None,
    ) -> None:
        super().__init__(name, link_dir=link_dir)
        self.suffix = suffix
        self.prefix = prefix
        self.scans = 0

    @staticmethod
    def _bytes(payload: bytes | str) -> bytes:
        return payload.encode("latin-1") if isinstance(payload, str) else payload

    def scan_now(self, payload: bytes | str) -> None:
        self.scans += 1
        self.write(self.prefix + self._bytes(payload) + self.suffix)

    async def scan(self, payload: bytes | str, *, chunk: int = 64, delay_s: float = 0.002) -> None:
        self.scans += 1
        data = self.prefix + self._bytes(payload) + self.suffix
        for i in range(0, len(data), chunk):
            self.write(data[i : i + chunk])
            await trio.sleep(delay_s)
