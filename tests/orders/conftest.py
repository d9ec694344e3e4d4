"""A store taking online orders: the hub (sale, state channel to a real Metrc sandbox, orders), a picker
handheld P1, a channel whose callback URL is a small real HTTP receiver, and a real SMTP server
(aiosmtpd) for the customer notices."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from aiosmtpd.controller import Controller

from hub.app import Hub
from hub.client import HubClient
from hub.domain import signing
from hub.domain.catalog import Package
from hub.domain.orders import Order
from hub.orders import store as ostore
from hub.sale import inventory
from hub.store.env import decode
from sandbox import demo as sbx
from sandbox.server import SandboxConfig, SandboxHandle, serve
from sandbox.testing import SandboxAdmin
from tests.conftest import DEMO_PAIRING, PINS, make_config
from tests.state.conftest import state_toml

CHANNEL = "web"
SECRET = "test-channel-secret-0123456789"


def orders_toml(callback_port: int, smtp_port: int, extra: str = "") -> str:
    return f"""
[[registers]]
id = "P1"
name = "Picker 1"
kind = "picker"

[[registers]]
id = "P2"
name = "Picker 2"
kind = "picker"

[[channels]]
id = "{CHANNEL}"
secret = "{SECRET}"
callback_url = "http://127.0.0.1:{callback_port}/callbacks"

[notices]
email = "smtp"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_from = "orders@teststore.example"
sms = "sink"
{extra}
"""


class Inbox:
    """aiosmtpd handler: every message the hub's notifier delivers."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


class LoopbackSmtp(Controller):
    """aiosmtpd's threaded server on a port the system picks: ``port`` is 0 until ``start()`` has bound it.

    A port picked beforehand may be taken by another process before the server binds it. aiosmtpd 1.4's
    start() checks the server by connecting to ``port``, which fails for 0 (aio-libs/aiosmtpd#388): the
    bound port is read back just before that check."""

    def __init__(self, handler: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0)

    def _trigger_server(self) -> None:
        assert self.server is not None  # bound by start() before it calls this
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class Receiver:
    """The channel's end of the callbacks: a plain HTTP server on a trio socket."""

    port: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_next: int = 0

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            await self._answer(stream)

    async def _answer(self, stream: trio.SocketStream) -> None:
        data = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                body += await stream.receive_some(65536)
            if self.fail_next > 0:
                self.fail_next -= 1
                await stream.send_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
            else:
                ok = signing.verify(
                    SECRET,
                    headers["x-storehub-timestamp"],
                    headers["x-storehub-signature"],
                    body,
                    time.time(),
                )
                assert ok is None, ok
                self.headers.append(headers)
                self.events.append(json.loads(body))
                await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")


@dataclass
class Shop:
    hub: Hub
    sandbox: SandboxHandle
    admin: SandboxAdmin
    receiver: Receiver
    inbox: Inbox

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.hub.http_port}"

    async def post_order(
        self,
        body: dict[str, Any] | bytes,
        *,
        ts: int | None = None,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = headers or signing.signed_headers(
            CHANNEL, secret, ts if ts is not None else int(time.time()), raw
        )
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(f"{self.http}/api/v1/orders", content=raw, headers=h)

    async def menu(self, since: str = "", etag: str = "") -> httpx.Response:
        h = signing.signed_headers(CHANNEL, SECRET, int(time.time()), b"")
        if etag:
            h["if-none-match"] = etag
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(
                f"{self.http}/api/v1/menu", params={"since": since} if since else None, headers=h
            )

    def order(self, order_id: str) -> Order:
        o = ostore.order(self.hub.store, order_id)
        assert o is not None
        return o

    def reservations(self) -> dict[str, Any]:
        with self.hub.store.read() as txn:
            return {
                bytes(k).decode(): decode(v, ostore.ProductReservations)
                for k, v in txn.cursor(db=self.hub.store.db("order_reservations"))
            }

    def packages(self, product_id: str) -> list[Package]:
        today = datetime.now(UTC).date()
        return [
            p
            for p in inventory.packages_of(self.hub.store, product_id)
            if p.status == "active"
            and p.lab_testing in ("passed", "retest_passed", "not_required")
            and p.quantity > 0
            and (p.expires_on is None or p.expires_on >= today)
        ]


def order_body(external_id: str, lines: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": external_id,
        "customer": {
            "name": "Avery Adult",
            "birth_date": "1990-01-01",
            "email": "avery@example.com",
            "phone": "+15555550100",
        },
        "lines": lines,
        "fulfilment": "pickup",
        "promised_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "substitution": "similar",
    }
    body.update(over)
    return body


@pytest.fixture
async def shop(nursery: trio.Nursery, tmp_path: Path) -> Any:
    from hub import wiring
    from hub.demo import seed_demo
    from hub.orders.feature import OrdersOptions
    from hub.state_channel import feature as state_channel
    from hub.state_channel.demo import align_sandbox

    handle: SandboxHandle = await nursery.start(
        serve, SandboxConfig(data_dir=tmp_path / "sandbox", seed="demo")
    )
    receiver: Receiver = await nursery.start(Receiver().serve)
    inbox = Inbox()
    smtp = LoopbackSmtp(inbox)
    await trio.to_thread.run_sync(smtp.start)
    config = make_config(tmp_path / "data", state_toml(handle.url) + orders_toml(receiver.port, smtp.port))
    config.server.demo = True

    async def setup(h: Hub) -> None:
        await trio.to_thread.run_sync(seed_demo, h.store, h.config)

    hub = wiring.build(
        config,
        wiring.Features(
            sale=wiring.SaleOptions(demo=True),
            state_channel=state_channel.ChannelOptions(
                retry_policy=state_channel.fast_retry_policy(), poll_seconds=0.2, schedule=False
            ),
            backoffice=True,
            orders=OrdersOptions(
                retry_policy=state_channel.fast_retry_policy(), poll_seconds=0.2, housekeeping_every=0.2
            ),
        ),
    )
    hub.services.setup.insert(0, setup)
    try:
        # the hub runs in a nursery of its own, so it has stopped (its notifier's last SMTP session
        # included) before the SMTP server goes
        async with trio.open_nursery() as own:
            await own.start(hub.run)
            await align_sandbox(hub, handle.url, sbx.METRC_LICENSE)
            admin = SandboxAdmin(handle.url)
            try:
                yield Shop(hub=hub, sandbox=handle, admin=admin, receiver=receiver, inbox=inbox)
            finally:
                await admin.aclose()
                # let the callbacks and notices in flight land: a request cut off mid-body leaves httpx's
                # body stream to the garbage collector, which the suite's warnings-as-errors refuses
                with trio.move_on_after(5):
                    while ostore.deliveries(hub.store, "order_callbacks") or ostore.deliveries(
                        hub.store, "notices"
                    ):
                        await trio.sleep(0.05)
                hub.stop()
    finally:
        handle.stop()
        await trio.to_thread.run_sync(smtp.stop)


async def ready_picker(c: HubClient, picker: str = "P1", staff: str = "tom") -> None:
    await c.pair(DEMO_PAIRING.get(picker) or await _code(c, picker))
    await c.login(staff, PINS[staff])


async def _code(c: HubClient, picker: str) -> str:
    raise AssertionError(f"no pairing code for {picker}")


async def wait_for(pred: Callable[[], Any], timeout: float = 10) -> Any:
    with trio.fail_after(timeout):
        while not (v := pred()):
            await trio.sleep(0.05)
    return v
