"""A serial port under trio: pyserial configures, trio waits.

pyserial opens and configures the port (termios: baud, data bits, parity, stop bits; ``O_NONBLOCK``);
reads and writes go straight to the file descriptor after ``trio.lowlevel.wait_readable`` /
``wait_writable`` — the mechanism pyserial-asyncio uses, without a second event loop
(python-stack.md §3.3). ``socket://host:port`` (a serial device server such as a Moxa NPort, or a
simulator) opens through pyserial's URL handler and has a file descriptor too.

Every failure leaves here as ``DeviceDisconnected`` (or ``DeviceTimeout``): the caller never sees
``SerialException``, ``OSError`` or trio's resource errors.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable

import msgspec
import serial
import trio

from drivers.errors import DeviceDisconnected, DeviceError

_PARITY = {
    "N": serial.PARITY_NONE,
    "E": serial.PARITY_EVEN,
    "O": serial.PARITY_ODD,
    "M": serial.PARITY_MARK,
    "S": serial.PARITY_SPACE,
}
_STOPBITS = {1: serial.STOPBITS_ONE, 1.5: serial.STOPBITS_ONE_POINT_FIVE, 2: serial.STOPBITS_TWO}


class SerialSettings(msgspec.Struct, frozen=True, kw_only=True):
    port: str  # /dev/ttyUSB0, /dev/ttyACM0, /dev/serial/by-id/…, or socket://host:port
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    exclusive: bool = True  # flock the port: two hubs must not share a scale


def _open_blocking(settings: SerialSettings) -> serial.SerialBase:
    if settings.parity not in _PARITY:
        raise ValueError(f"parity must be one of {''.join(_PARITY)}, not {settings.parity!r}")
    if settings.stopbits not in _STOPBITS:
        raise ValueError(f"stop bits must be 1, 1.5 or 2, not {settings.stopbits!r}")
    if settings.bytesize not in (5, 6, 7, 8):
        raise ValueError(f"data bits must be 5–8, not {settings.bytesize!r}")
    kwargs = dict(
        baudrate=settings.baudrate,
        bytesize=settings.bytesize,
        parity=_PARITY[settings.parity],
        stopbits=_STOPBITS[settings.stopbits],
        timeout=0,
        write_timeout=0,
    )
    if "://" in settings.port:
        ser = serial.serial_for_url(settings.port, **kwargs)
    else:
        ser = serial.Serial(settings.port, exclusive=settings.exclusive, **kwargs)
        # A real device drops what nobody read; a pty or a USB adapter buffers it. Start clean.
        ser.reset_input_buffer()
    return ser


class SerialTransport:
    """One open port. Exactly one task may receive and one may send at a time (trio fd rule)."""

    def __init__(self, ser: serial.SerialBase, settings: SerialSettings) -> None:
        self._ser = ser
        self.settings = settings
        self._fd: int = ser.fileno()
        self._closed = False
        self._send_lock = trio.Lock()
        self._receive_guard = trio.Lock()

    @classmethod
    async def open(cls, settings: SerialSettings) -> SerialTransport:
        """Open and configure the port; ``DeviceDisconnected`` when it is absent or busy."""
        try:
            if "://" in settings.port:
                # socket:// connects with a blocking 5 s timeout inside pyserial: keep it off the loop.
                ser = await trio.to_thread.run_sync(_open_blocking, settings, abandon_on_cancel=True)
            else:
                await trio.lowlevel.checkpoint()
                ser = _open_blocking(settings)
        except (serial.SerialException, OSError) as exc:
            raise DeviceDisconnected(f"cannot open: {_describe(exc)}", device=settings.port) from exc
        return cls(ser, settings)

    @property
    def port(self) -> str:
        return self.settings.port

    @property
    def closed(self) -> bool:
        return self._closed

    async def receive_some(self, max_bytes: int = 4096) -> bytes:
        """At least one byte. ``DeviceDisconnected`` on hang-up, read error or end of stream."""
        if self._receive_guard.locked():
            raise trio.BusyResourceError("another task is already reading this port")
        async with self._receive_guard:
            while True:
                self._check_open()
                try:
                    await trio.lowlevel.wait_readable(self._fd)
                except trio.ClosedResourceError:
                    raise DeviceDisconnected("port closed", device=self.port) from None
                self._check_open()
                try:
                    data = os.read(self._fd, max_bytes)
                except BlockingIOError:
                    continue  # spurious wake-up
                except OSError as exc:
                    raise DeviceDisconnected(f"read failed: {_describe(exc)}", device=self.port) from exc
                if not data:
                    # Readable but empty: pyserial's own reading of this is "device disconnected".
                    raise DeviceDisconnected("device hung up", device=self.port)
                return data

    async def send_all(self, data: bytes) -> None:
        """Write everything, waiting for the port to drain between partial writes."""
        async with self._send_lock:
            view = memoryview(data)
            while True:
                self._check_open()
                try:
                    await trio.lowlevel.wait_writable(self._fd)
                except trio.ClosedResourceError:
                    raise DeviceDisconnected("port closed", device=self.port) from None
                self._check_open()
                if not view:
                    return
                try:
                    n = os.write(self._fd, view)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    raise DeviceDisconnected(f"write failed: {_describe(exc)}", device=self.port) from exc
                view = view[n:]
                if not view:
                    return

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # notify_closing first: wakes any task parked in wait_readable/wait_writable on this fd.
            trio.lowlevel.notify_closing(self._fd)
            try:
                self._ser.close()
            except (serial.SerialException, OSError):
                pass  # the device is already gone; the fd is released either way
        await trio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceDisconnected("port closed", device=self.port)

    async def __aenter__(self) -> SerialTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{os.strerror(exc.errno)} (errno {exc.errno})"
    return str(exc) or type(exc).__name__


class Backoff:
    """Exponential backoff with jitter for reconnects: 0.2 s, 0.4 s, … capped, reset on success."""

    def __init__(self, initial: float = 0.2, maximum: float = 10.0, factor: float = 2.0, jitter: float = 0.1):
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return delay * (1 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self.attempts = 0


async def open_with_backoff(
    settings: SerialSettings,
    *,
    backoff: Backoff | None = None,
    on_failure: Callable[[DeviceError], Awaitable[None]] | None = None,
) -> SerialTransport:
    """Reopen a port until it is back (a replugged USB adapter), sleeping with backoff between tries.

    ``on_failure`` is awaited after each failed attempt (publish "down", count the error).
    """
    backoff = backoff or Backoff()
    while True:
        try:
            transport = await SerialTransport.open(settings)
        except DeviceError as exc:
            if on_failure is not None:
                await on_failure(exc)
            await trio.sleep(backoff.next_delay())
            continue
        backoff.reset()
        return transport
