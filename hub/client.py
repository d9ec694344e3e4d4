"""A small trio client of the live protocol, used by the tests, by ``bench/`` and by integrators.

async with connect("ws://127.0.0.1:8765") as client:
    await client.pair("12345678")            # or client.hello(device_token)
    await client.login("ana", "1234")
    result = await client.request("report_incident", category="printer", description="jammed")
    snap = await client.next_snapshot()

``next_snapshot`` takes the snapshots in the order they came; ``wait_snapshot(predicate)`` looks at the latest
of each topic and then waits for newer ones (it drops the older ones still queued, so mixing the two on one
client skips states).
"""

from __future__ import annotations

import itertools
import json
import secrets
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream


class ClientError(Exception):
    """The hub answered ``error``."""

    def __init__(
        self, code: str, message: str, field: str | None = None, frame: dict[str, Any] | None = None
    ):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field
        self.frame = frame or {}


class HubClient:
    def __init__(self, ws: WebSocketConnection, nursery: trio.Nursery) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(4) + "-"
        self._waiting: dict[str, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._snap_send, self._snap_recv = trio.open_memory_channel[dict[str, Any]](1000)
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.snapshots_in_replies = 0  # snapshots that came in a reply's frame (taken out of it)
        self.welcome: dict[str, Any] | None = None
        self.unmatched: list[dict[str, Any]] = []
        self.device_token: str | None = None
        self.session_token: str | None = None
        self.register_id: str | None = None
        self.closed_reason: Any = None
        self.welcomed = trio.Event()
        nursery.start_soon(self._reader)

    async def _reader(self) -> None:
        try:
            while True:
                text = await self.ws.get_message()
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "snapshot":
                    self._snapshot(frame)
                    continue
                if kind in ("ok", "error") and isinstance(frame.get("snapshot"), dict):
                    # a snapshot due when the reply left travels in it: taken as a snapshot frame, first
                    self._snapshot(frame.pop("snapshot"))
                    self.snapshots_in_replies += 1
                if kind == "welcome":
                    self.welcome = frame
                    self.welcomed.set()
                elif kind in ("ok", "error") and frame.get("id") in self._waiting:
                    self._waiting.pop(frame["id"]).send_nowait(frame)
                else:
                    self.unmatched.append(frame)
        except ConnectionClosed as exc:
            self.closed_reason = exc.reason
        finally:
            for ch in self._waiting.values():
                ch.close()
            self._snap_send.close()
            self.welcomed.set()

    def _snapshot(self, frame: dict[str, Any]) -> None:
        self.snapshots[frame["topic"]] = frame
        try:
            self._snap_send.send_nowait(frame)
        except trio.WouldBlock:
            pass

    def new_id(self) -> str:
        # unique across clients: a hub answers a repeated id from its stored reply
        return f"{self._prefix}{next(self._ids)}"

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send_message(text)

    async def request(self, type_: str, *, id: str | None = None, timeout: float = 30, **fields: Any) -> Any:
        """Send one command and return its ``result``; raise ClientError on ``error``."""
        frame = await self.request_frame(type_, id=id, timeout=timeout, **fields)
        if frame["type"] == "error":
            raise ClientError(frame.get("code", "error"), frame.get("message", ""), frame.get("field"), frame)
        return frame.get("result")

    async def request_frame(
        self, type_: str, *, id: str | None = None, timeout: float = 30, **fields: Any
    ) -> dict:
        msg_id = id or self.new_id()
        send, recv = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[msg_id] = send
        await self.ws.send_message(json.dumps({"type": type_, "id": msg_id, **fields}))
        with trio.fail_after(timeout):
            try:
                return await recv.receive()
            except trio.EndOfChannel:
                raise ConnectionClosed(self.closed_reason) from None

    async def pair(self, code: str, device_name: str = "hub.client") -> dict[str, Any]:
        result = await self.request("pair", code=code, device_name=device_name)
        self.device_token = result["device_token"]
        self.register_id = result["register_id"]
        return result

    async def hello(self, device_token: str, session_token: str | None = None) -> dict[str, Any]:
        result = await self.request("hello", device_token=device_token, session_token=session_token or "")
        self.device_token = device_token
        self.register_id = result["register_id"]
        return result

    async def login(self, staff: str, pin: str) -> dict[str, Any]:
        result = await self.request("login", staff=staff, pin=pin)
        self.session_token = result["session_token"]
        return result

    async def next_snapshot(self, timeout: float = 10) -> dict[str, Any]:
        with trio.fail_after(timeout):
            return await self._snap_recv.receive()

    async def wait_snapshot(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        """Wait for a snapshot whose state satisfies ``predicate`` (the latest known one counts).

        Snapshots already queued are older than (or the same as) the latest known one of their topic, so
        they are dropped first: a queued snapshot of the previous sale must not answer for this one.
        """
        with trio.fail_after(timeout):
            while True:
                try:
                    self._snap_recv.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            for snap in list(self.snapshots.values()):
                if predicate(snap["state"]):
                    return snap
            while True:
                snap = await self._snap_recv.receive()
                if predicate(snap["state"]):
                    return snap

    async def aclose(self) -> None:
        await self.ws.aclose()


@asynccontextmanager
async def connect(
    url: str, *, origin: str | None = None, max_message_size: int = 16 << 20, ssl_context: Any = None
) -> AsyncIterator[HubClient]:
    """Open a connection; the TCP stream is ours, so it is closed however the hub goes away."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = [(b"Origin", origin.encode())] if origin else None
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
    stream = await trio.open_tcp_stream(host, port)
    try:
        if secure:
            stream = trio.SSLStream(
                stream,
                ssl_context or ssl.create_default_context(),
                server_hostname=host,
                https_compatible=True,
            )
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery,
                stream,
                f"{host}:{port}",
                resource,
                extra_headers=headers,
                max_message_size=max_message_size,
            )
            client = HubClient(ws, nursery)
            try:
                # the welcome frame arrives first; wait for it so callers see a live hub
                with trio.fail_after(10):
                    await client.welcomed.wait()
                yield client
            finally:
                with trio.move_on_after(2) as scope:
                    scope.shield = True
                    try:
                        await ws.aclose()
                    except Exception:  # e.g. a ping answered while closing (wsproto LOCAL_CLOSING)
                        pass
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()
