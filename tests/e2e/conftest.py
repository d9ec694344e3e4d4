"""Browser end-to-end fixtures: the real hub as a subprocess and Debian's Chromium driven by Playwright.

These tests are sync (Playwright's async API is asyncio-only); with ``trio_mode = true`` pytest-trio leaves
sync tests alone. The hub runs as ``python -m hub.cli demo`` on free loopback ports so a test can kill it
and start it again on the same ports and data directory, exactly as a power cut would.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, Route, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("STOREHUB_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium tries the internet and stalls on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}  # the register's touch screen
DEMO_PAIRING_R1 = "11111111"

expect.set_options(timeout=8_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    """``storehub demo`` in a subprocess; stop() and start() again keep its ports and data directory."""

    def __init__(self, data: Path, log: Path, *, devices: bool = False) -> None:
        self.data = data
        self.log_path = log
        self.devices = devices  # the demo's simulated devices (card terminal: the SPIn emulator)
        self.http_port = free_port()
        self.ws_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._started = False  # once up, its ports are its own (a restart keeps them)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 20) -> None:
        for attempt in range(3):
            try:
                self._start(timeout)
            except RuntimeError as exc:
                self.stop()
                # free_port() closes the port before the hub binds it: on a busy machine another process
                # may take it in between. A first start may pick new ports; a restart keeps its own.
                if "Address already in use" not in str(exc) or self._started or attempt == 2:
                    raise
                self.http_port, self.ws_port = free_port(), free_port()
            except BaseException:
                self.stop()
                raise
            else:
                self._started = True
                return

    def _start(self, timeout: float) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub.cli",
                "demo",
                "--data",
                str(self.data),
                "--http-port",
                str(self.http_port),
                "--ws-port",
                str(self.ws_port),
                *([] if self.devices else ["--no-devices"]),
                "--no-sandbox",
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"hub exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"hub not healthy after {timeout} s: {self.log_path.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            return json.loads(r.read())


@pytest.fixture
def hub(tmp_path: Path, output_dir: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "data", output_dir / "hub.log")
    h.start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture
def context(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    ctx = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),  # a fresh profile per test: no pairing carried over
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport=VIEWPORT,
    )
    try:
        yield ctx
    finally:
        ctx.close()


class Shots:
    """Numbered screenshots of each step under test-output/<test name>/."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.n = 0

    def __call__(self, step: str) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}-{step}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def page(context: BrowserContext, output_dir: Path) -> Iterator[Page]:
    pg = context.pages[0] if context.pages else context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    # an uncaught exception in the register's scripts fails the test that caused it
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def shot(page: Page, output_dir: Path) -> Shots:
    return Shots(page, output_dir)


# ---------------------------------------------------------------- register helpers


def open_register(page: Page, hub: HubProcess) -> None:
    page.goto(hub.url + "/register/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")


def pair(page: Page, code: str = DEMO_PAIRING_R1) -> None:
    expect(page.locator("#screen-pair")).to_be_visible()
    page.fill("#pair-code", code)
    page.click("#pair-submit")


def login(page: Page, staff: str, pin: str) -> None:
    expect(page.locator("#screen-login")).to_be_visible()
    page.fill("#login-staff", staff)
    page.click('#keypad [data-key="clear"]')
    for digit in pin:
        page.click(f'#keypad [data-key="{digit}"]')
    page.click("#login-submit")


def pair_and_login(page: Page, hub: HubProcess, staff: str = "ana", pin: str = "1111") -> None:
    open_register(page, hub)
    pair(page)
    login(page, staff, pin)
    expect(page.locator("#screen-register")).to_be_visible()


def wedge_scan(page: Page, data: str) -> None:
    """Type a scan the way a keyboard-wedge scanner does: every character as a key, then Enter."""
    page.locator("#customer h2").click()  # focus on nothing editable, as on a busy counter
    wedge_type(page, data + "\n")


def _wedge_key(ch: str) -> dict[str, Any]:
    """The CDP key event a US-layout wedge makes for one character (line breaks are Enter)."""
    if ch in "\r\n":
        return {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"}
    if ch == " ":
        return {"key": " ", "code": "Space", "windowsVirtualKeyCode": 32, "text": " "}
    if ch == "@":
        return {"key": "@", "code": "Digit2", "windowsVirtualKeyCode": 50, "text": "@", "modifiers": 8}
    if ch.isascii() and ch.isdigit():
        return {"key": ch, "code": f"Digit{ch}", "windowsVirtualKeyCode": ord(ch), "text": ch}
    if ch.isascii() and ch.isalpha():
        code = {"code": f"Key{ch.upper()}", "windowsVirtualKeyCode": ord(ch.upper())}
        return {"key": ch, **code, "text": ch, "modifiers": 8 if ch.isupper() else 0}
    return {"key": ch, "text": ch}


def wedge_type(
    page: Page,
    data: str,
    gaps_ms: Sequence[float] = (),
    pause_s: float = 0.0,
    after: tuple[float, float] | None = None,
) -> float:
    """Type ``data`` the way a keyboard-wedge scanner does: each key stamped with the time the scanner made
    it (4 ms apart, or ``gaps_ms[i]`` before key i + 1), however late the browser gets to it (``pause_s``
    of wall time between keys). Playwright's own typing makes every key a round trip to the browser, tens
    of ms apart on a busy machine, which no scanner does. RS (0x1E) has no key on a US layout and is lost,
    as with most wedges. ``after=(stamp, ms)`` makes the first key ``ms`` after a key stamped ``stamp``
    (what this returns for its last key), to type one scan in parts."""
    keys = [c for c in data if c != "\x1e"]
    gaps = [gaps_ms[i] if i < len(gaps_ms) else 4.0 for i in range(len(keys) - 1)]
    at = after[0] + after[1] / 1000 if after else time.time() - sum(gaps) / 1000
    events: list[dict[str, Any]] = []
    for i, ch in enumerate(keys):
        if i:
            at += gaps[i - 1] / 1000
        key = _wedge_key(ch)
        up = {k: v for k, v in key.items() if k != "text"}
        events.append({"type": "keyDown", "timestamp": at, **key})
        events.append({"type": "keyUp", "timestamp": at + 0.001, **up})
    cdp = page.context.new_cdp_session(page)
    try:
        if pause_s:
            for i, event in enumerate(events):
                if i and event["type"] == "keyDown":
                    time.sleep(pause_s)
                cdp.send("Input.dispatchKeyEvent", event)
        else:
            # all keys sent before the first answer is awaited, as a scanner's reach the browser's input
            # queue: one by one, every key waits for this process to be scheduled again, and on a loaded
            # machine a wait past the wedge's hold (300 ms of wall time in the page) ends the scan there
            impl = cdp._impl_obj  # Playwright's sync API has no pipelined send; its async layer does
            sends = [impl.send(method="Input.dispatchKeyEvent", params=e, timeout=None) for e in events]
            cdp._sync(asyncio.gather(*sends))
    finally:
        cdp.detach()
    return at


# ---------------------------------------------------------------- a WebSocket path we can cut


class CuttableProxy:
    """A TCP relay in front of the hub's WebSocket port. ``cut(seconds)`` drops every connection and
    refuses new ones for a while, as a pulled network cable would, while the hub itself keeps running."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.sock.settimeout(0.2)  # so close() is noticed: accept() is not woken by another thread's close
        self.down_until = 0.0
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if time.monotonic() < self.down_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        pair = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.2)
                if self.closed:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                s.close()

    def cut(self, seconds: float) -> None:
        self.down_until = time.monotonic() + seconds
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.closed = True
        self.cut(0)
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def ws_proxy(hub: HubProcess, context: BrowserContext) -> Iterator[CuttableProxy]:
    """Route the register's WebSocket through a CuttableProxy (``/api/hub`` names the proxy's port)."""
    proxy = CuttableProxy(hub.ws_port)

    def rewrite(route: Route) -> None:
        resp = route.fetch()
        info = resp.json()
        info["ws_port"] = proxy.port
        route.fulfill(response=resp, json=info)

    context.route("**/api/hub", rewrite)
    try:
        yield proxy
    finally:
        proxy.close()


def ensure_drawer_open_by_mouse(page: Page, witness: tuple[str, str] = ("maria", "3333")) -> None:
    """Open the register's drawer with a counted float ($260) and a witness, as the start of a shift."""
    button = page.locator("#btn-open-drawer")
    expect(button).to_be_visible()
    button.click()
    page.fill("#drawer-form [name=dB20]", "10")
    page.fill("#drawer-form [name=dB5]", "10")
    page.fill("#drawer-form [name=dC25]", "40")
    page.fill("#drawer-form [name=witness]", witness[0])
    page.fill("#drawer-form [name=witness_pin]", witness[1])
    page.click("#drawer-form button[value=ok]")
    expect(page.locator("#drawer-closed")).to_have_count(0)
    expect(page.locator("#dlg-drawer")).to_be_hidden()
