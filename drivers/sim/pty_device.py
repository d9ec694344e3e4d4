"""A simulated serial device on a real pseudo-terminal.

The simulator owns the master side of an ``os.openpty()`` pair and publishes a stable path (a symlink,
like ``/dev/serial/by-id/…``) to the slave, which the hub opens with pyserial exactly as it opens real
hardware. ``unplug()`` closes both sides and removes the link: the hub's open port hangs up and reopening
fails until ``replug()`` makes a fresh pty behind the same path — what a USB-serial adapter does.

Subclasses implement ``on_bytes(data)`` (the device's answer to what the hub sent) and may run
``background(nursery)`` tasks (a streaming scale) for each plugged-in session.
"""

from __future__ import annotations

import os
import tempfile
import termios
import tty

import trio
import trio.lowlevel


class PtyDevice:
    def __init__(self, name: str, *, link_dir: str | None = None) -> None:
        self.name = name
        self._own_dir = link_dir is None
        self._link_dir = link_dir or tempfile.mkdtemp(prefix="storehub-dev-")
        self.path = os.path.join(self._link_dir, name)  # stable path the hub opens
        self.received = bytearray()  # everything the hub wrote, across sessions
        self.dropped = 0  # bytes a full pty buffer refused (a real device drops them too)
        self.silent = False  # a "slow" device: reads commands but never answers
        self._master: int | None = None
        self._slave: int | None = None
        self._session: trio.CancelScope | None = None
        self._plugged = trio.Event()
        self._stopped = False

    # ------------------------------------------------------------------ control API

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def unplug(self) -> None:
        """Yank the cable: the hub's port hangs up now; the path vanishes until ``replug``."""
        if self._session is not None:
            self._session.cancel()
        self._close_pty()
        self._plugged = trio.Event()

    def replug(self) -> None:
        if self._master is None:
            self._open_pty()
            self._plugged.set()

    def write(self, data: bytes) -> None:
        """Send bytes to the hub as the device would (non-blocking; dropped if nobody reads)."""
        if self._master is None or self.silent:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                self.dropped += len(view)
                return
            except OSError:
                return  # unplugged under us
            view = view[n:]

    def write_garbage(self, data: bytes) -> None:
        """Line noise: bytes that are no frame of the protocol."""
        silent, self.silent = self.silent, False
        try:
            self.write(data)
        finally:
            self.silent = silent

    # ------------------------------------------------------------------ for subclasses

    def on_bytes(self, data: bytes) -> None:
        """Called with what the hub wrote. Default: record only."""

    async def background(self) -> None:
        """Runs for each plugged-in session; cancelled on unplug. Default: nothing."""
        await trio.sleep_forever()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[PtyDevice] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the device until cancelled; ``task_status.started(self)`` once the path exists."""
        self.replug()
        task_status.started(self)
        try:
            while True:
                await self._plugged.wait()
                master = self._master
                if master is None:
                    await trio.lowlevel.checkpoint()
                    continue
                with trio.CancelScope() as scope:
                    self._session = scope
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._read_loop, master)
                        nursery.start_soon(self.background)
                self._session = None
                if self._master == master:  # both tasks ended without an unplug: treat as one
                    self.unplug()
        finally:
            self._close_pty()
            if self._own_dir:
                try:
                    os.rmdir(self._link_dir)
                except OSError:
                    pass

    async def _read_loop(self, master: int) -> None:
        while True:
            try:
                await trio.lowlevel.wait_readable(master)
            except trio.ClosedResourceError:
                return
            if self._master != master:
                return
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                # EIO: no process has the slave open right now (the hub closed its port). Wait for it.
                await trio.sleep(0.02)
                continue
            if not data:
                await trio.sleep(0.02)
                continue
            self.received += data
            self.on_bytes(data)

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        # Raw: no echo, no line discipline, no CR/LF translation — a serial line carries bytes as they are.
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.path + ".tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)

    def _close_pty(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        master, slave = self._master, self._slave
        self._master = self._slave = None
        if master is not None:
            trio.lowlevel.notify_closing(master)
            os.close(master)
        if slave is not None:
            os.close(slave)
