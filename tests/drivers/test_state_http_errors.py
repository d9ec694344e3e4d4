"""drivers.state_http.send: an answer httpx cannot read is our error, not httpx's.

A real server on loopback answers with a body its Content-Encoding header lies about (gzip declared, plain
bytes sent): httpx raises ``DecodingError``, which is not a ``TransportError``. A read says the state system
is unavailable; a write has left and may have been stored, so its outcome is unknown."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
import trio

from drivers.state_errors import OutcomeUnknown, StateUnavailable
from drivers.state_http import send

BODY = b"this is not gzip"

# httpx leaves its response's async generators unclosed when decoding fails mid-read; trio reports them when
# they are collected (encode/httpx#3686, fixes proposed in #3700 and #3777). That is httpx's cleanup, not a
# fault of ours, and it is the only unraisable warning these tests accept.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object:pytest.PytestUnraisableExceptionWarning"
)


async def lying_server(stream: trio.SocketStream) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += await stream.receive_some(65536)
    await stream.send_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY)
    )
    await stream.aclose()


@pytest.fixture
async def url(nursery: trio.Nursery) -> str:
    listeners = await nursery.start(partial(trio.serve_tcp, lying_server, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_an_unreadable_answer_to_a_read_is_unavailable(url: str) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient() as http:
            with pytest.raises(StateUnavailable, match="DecodingError"):
                await send(http, "GET", f"{url}/packages/v2/active", system="metrc")


async def test_an_unreadable_answer_to_a_write_is_outcome_unknown(url: str) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient() as http:
            with pytest.raises(OutcomeUnknown, match="may have been stored"):
                await send(http, "POST", f"{url}/sales/v2/receipts", system="metrc", json=[{"x": 1}])
