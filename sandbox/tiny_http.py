"""The smallest HTTP/1.1 server the payment emulators need (h11 on trio): one JSON answer per request, or
none at all — an emulator may drop the connection unanswered, as a real network does."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11
import trio


@dataclass
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, Any] | None  # (status, JSON payload), or None: drop the connection unanswered
Handler = Callable[[HttpRequest], Awaitable[Answer]]


async def serve_json(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; ``task_status.started`` gets the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)

    async def connection(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                try:
                    request = await _read(conn, stream)
                except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if request is None:
                    return
                answer = await handler(request)
                if answer is None:
                    return
                status, payload = answer
                data = json.dumps(payload).encode()
                head = h11.Response(
                    status_code=status,
                    headers=[("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
                )
                try:
                    await stream.send_all(
                        conn.send(head) + conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage())
                    )
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if conn.our_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


async def _read(conn: h11.Connection, stream: trio.SocketStream) -> HttpRequest | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data and head is None:
                return None
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            target = urlsplit(head.target.decode())
            return HttpRequest(
                method=head.method.decode(),
                path=target.path.rstrip("/") or "/",
                query={k.lower(): v for k, v in parse_qsl(target.query, keep_blank_values=True)},
                headers={k.decode().lower(): v.decode() for k, v in head.headers},
                body=bytes(body),
            )
        elif isinstance(event, h11.ConnectionClosed):
            return None
