"""Getting bytes to a printer, and holding them while it is down.

``open_printer_link`` connects to a raw TCP printer port (9100, "JetDirect") with trio, or to a serial
printer through ``SerialTransport``; every failure becomes ``DeviceDisconnected`` / ``DeviceTimeout``.

``PrintSpooler`` owns one printer: jobs are submitted without waiting (a sale never waits on paper), kept
in order while the printer is unreachable or out of paper, and printed when it is back. Before each job
(and every few seconds while idle) it asks the printer for its paper status, which also proves the link
is alive — a TCP send into a dead connection "succeeds" into the kernel buffer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import msgspec
import trio

from drivers import escpos, zpl
from drivers.errors import DeviceDisconnected, DeviceError, DeviceProtocolError, DeviceTimeout
from drivers.serial_port import Backoff, SerialSettings, SerialTransport

log = logging.getLogger("storehub.devices.printer")


class PrinterLink(Protocol):
    async def send_all(self, data: bytes) -> None: ...
    async def receive_some(self, max_bytes: int = 4096) -> bytes: ...
    async def aclose(self) -> None: ...


class TcpPrinterLink:
    """A raw TCP printer connection with our error vocabulary."""

    def __init__(self, stream: trio.SocketStream, address: str) -> None:
        self._stream = stream
        self.address = address

    async def send_all(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise DeviceDisconnected(f"connection lost: {exc}", device=self.address) from exc

    async def receive_some(self, max_bytes: int = 4096) -> bytes:
        try:
            data = await self._stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise DeviceDisconnected(f"connection lost: {exc}", device=self.address) from exc
        if not data:
            raise DeviceDisconnected("printer closed the connection", device=self.address)
        return data

    async def aclose(self) -> None:
        await self._stream.aclose()


def parse_tcp_address(address: str) -> tuple[str, int] | None:
    """``tcp://host:9100``, ``host:9100`` or ``host`` (port 9100) → (host, port); None for serial."""
    if address.startswith("tcp://"):
        address = address[len("tcp://") :]
    elif address.startswith("/") or "://" in address:
        return None
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "9100")
    return host.strip("[]"), int(port)


async def open_printer_link(
    address: str, *, connect_timeout_s: float = 3.0, baudrate: int = 9600
) -> PrinterLink:
    tcp = parse_tcp_address(address)
    if tcp is None:
        return await SerialTransport.open(SerialSettings(port=address, baudrate=baudrate))
    host, port = tcp
    try:
        with trio.fail_after(connect_timeout_s):
            stream = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise DeviceTimeout(f"no answer from {host}:{port}", device=address) from None
    except OSError as exc:
        raise DeviceDisconnected(f"cannot connect: {exc.strerror or exc}", device=address) from exc
    return TcpPrinterLink(stream, address)


# ------------------------------------------------------------------------------------------ status


class PrinterStatus(msgspec.Struct, frozen=True):
    ready: bool
    detail: str  # "ready", "paper near end", "paper out", "head open", "paused"
    paper_out: bool = False  # ESC/POS paper end sensor; Zebra: paper out (~HS) or "media out" (~HQES)


async def read_status(
    link: PrinterLink, language: Literal["escpos", "zpl"], *, timeout_s: float
) -> PrinterStatus:
    """Ask the printer how it is. ``DeviceTimeout`` if it does not answer, ``DeviceProtocolError`` if the
    answer makes no sense."""
    if language == "zpl":
        return await _zebra_status(link, timeout_s=timeout_s)
    await link.send_all(escpos.PAPER_STATUS_REQUEST)
    with trio.move_on_after(timeout_s):
        buf = await link.receive_some()
        status = escpos.parse_paper_status(buf[-1])
        if status is None:
            raise DeviceProtocolError(f"bad paper status byte {buf[-1]:#04x}")
        if status.paper_out:
            return PrinterStatus(False, "paper out", paper_out=True)
        return PrinterStatus(True, "paper near end" if status.near_end else "ready")
    raise DeviceTimeout("printer did not answer the status request")


async def _zebra_status(link: PrinterLink, *, timeout_s: float) -> PrinterStatus:
    """``~HS``; a Zebra that is out of media or ribbon, has its head open, its rewinder full or its head
    too hot does not answer it (ZPL Programming Guide, ~HS). Then ``~HQES`` names the error; a printer
    silent to both on a live connection is reported in those words, not as a dead link."""
    await link.send_all(zpl.HOST_STATUS_REQUEST)
    buf = b""
    with trio.move_on_after(timeout_s):
        while True:
            buf += await link.receive_some()
            zstatus = zpl.parse_host_status(buf)
            if zstatus is not None:
                if zstatus.paper_out:
                    return PrinterStatus(False, "paper out", paper_out=True)
                if zstatus.head_open:
                    return PrinterStatus(False, "head open")
                if zstatus.ribbon_out:
                    return PrinterStatus(False, "ribbon out")
                if zstatus.paused:
                    return PrinterStatus(False, "paused")
                return PrinterStatus(True, "ready")
            if len(buf) > 512:
                raise DeviceProtocolError("host status answer too long")
    await link.send_all(zpl.HOST_ERROR_QUERY)
    buf = b""
    with trio.move_on_after(timeout_s):
        while True:
            buf += await link.receive_some()
            errors = zpl.parse_error_status(buf)
            if errors is not None:
                if errors.errors:
                    return PrinterStatus(
                        False, ", ".join(errors.errors), paper_out=zpl.MEDIA_OUT in errors.errors
                    )
                break  # no error, yet ~HS went unanswered: say what Zebra documents
            if len(buf) > 1024:
                raise DeviceProtocolError("error status answer too long")
    return PrinterStatus(
        False, f"not ready: {zpl.SILENT_CONDITIONS} (the printer does not answer its status then)"
    )


# ------------------------------------------------------------------------------------------ spooler


class PrintJob(msgspec.Struct, frozen=True):
    job_id: str
    data: bytes


class QueueFull(DeviceError):
    code = "print_queue_full"


JobCallback = Callable[[str, Literal["printed", "failed"], str], Awaitable[None]]
HealthCallback = Callable[[bool, str], Awaitable[None]]


class PrintSpooler:
    """One printer's queue. ``submit`` never waits; ``run`` prints in order as the printer allows."""

    def __init__(
        self,
        address: str,
        *,
        language: Literal["escpos", "zpl"] = "escpos",
        status_check: bool = True,
        status_timeout_s: float = 2.0,
        connect_timeout_s: float = 3.0,
        baudrate: int = 9600,
        max_jobs: int = 200,
        idle_check_s: float = 5.0,
        backoff: Backoff | None = None,
        on_job: JobCallback | None = None,
        on_health: HealthCallback | None = None,
    ) -> None:
        self.address = address
        self.language = language
        self.status_check = status_check
        self.status_timeout_s = status_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.baudrate = baudrate
        self.max_jobs = max_jobs
        self.idle_check_s = idle_check_s
        self.backoff = backoff or Backoff(initial=0.2, maximum=5.0)
        self._on_job = on_job
        self._on_health = on_health
        self._jobs: deque[PrintJob] = deque()
        self._wakeup = trio.Event()
        self._link: PrinterLink | None = None
        self.up = False
        self.detail = "not connected yet"
        self.paper_out = False  # as the printer last said; not known (False) while it does not answer
        self.printed = 0

    @property
    def queued(self) -> int:
        return len(self._jobs)

    def submit(self, job_id: str, data: bytes) -> int:
        """Queue a job; returns how many jobs are now waiting. ``QueueFull`` past ``max_jobs``."""
        if len(self._jobs) >= self.max_jobs:
            raise QueueFull(f"{len(self._jobs)} jobs already waiting", device=self.address)
        self._jobs.append(PrintJob(job_id, data))
        self._wakeup.set()
        return len(self._jobs)

    async def _health(self, up: bool, detail: str) -> None:
        if (up, detail) != (self.up, self.detail):
            self.up, self.detail = up, detail
            if self._on_health is not None:
                await self._on_health(up, detail)

    async def _drop_link(self) -> None:
        link, self._link = self._link, None
        self.paper_out = False  # an unreachable printer pages as down, not as out of paper
        if link is not None:
            with trio.CancelScope(shield=True):
                try:
                    await link.aclose()
                except (DeviceError, OSError, trio.BrokenResourceError):
                    pass

    async def _ensure_ready(self) -> None:
        """Connect if needed and check the paper. Raises DeviceError when the printer cannot print."""
        if self._link is None:
            self._link = await open_printer_link(
                self.address, connect_timeout_s=self.connect_timeout_s, baudrate=self.baudrate
            )
        if self.status_check:
            status = await read_status(self._link, self.language, timeout_s=self.status_timeout_s)
            self.paper_out = status.paper_out
            if not status.ready:
                raise _NotReady(status.detail)
            await self._health(True, status.detail)
        else:
            await self._health(True, "connected")

    async def run(self, *, task_status: trio.TaskStatus[PrintSpooler] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        try:
            while True:
                try:
                    await self._ensure_ready()
                except _NotReady as exc:
                    # Connected and answering, but cannot print (paper out): keep the link, look again soon.
                    await self._health(False, exc.message)
                    await trio.sleep(min(1.0, self.idle_check_s))
                    continue
                except DeviceError as exc:
                    await self._drop_link()
                    await self._health(False, exc.message)
                    await trio.sleep(self.backoff.next_delay())
                    continue
                self.backoff.reset()
                if not self._jobs:
                    await self._idle(self.idle_check_s)
                    continue
                job = self._jobs[0]
                try:
                    assert self._link is not None
                    await self._link.send_all(job.data)
                except DeviceError as exc:
                    # The job stays at the head of the queue; it prints whole on the next connection.
                    await self._drop_link()
                    await self._health(False, exc.message)
                    await trio.sleep(self.backoff.next_delay())
                    continue
                self._jobs.popleft()
                self.printed += 1
                if self._on_job is not None:
                    await self._on_job(job.job_id, "printed", "")
        finally:
            await self._drop_link()

    async def _idle(self, seconds: float) -> None:
        self._wakeup = trio.Event()
        if self._jobs:
            self._wakeup.set()
        with trio.move_on_after(seconds):
            await self._wakeup.wait()


class _NotReady(DeviceError):
    code = "printer_not_ready"
