"""Customer SMS notices against a small real HTTP gateway started by the test (a plain HTTP/1.1 server on a
trio socket): a 200 is delivered, a 429 is retried until the gateway takes it, a 401 is given up at once.
The notifier runs in a real delivery actor over a real store and its single writer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

from actors.delivery import DeliveryActor
from actors.notifier import Notifier
from hub.config import NoticesSection
from hub.orders import store as ostore
from hub.state_channel.feature import fast_retry_policy
from hub.store.env import Store
from hub.store.writer import StoreWriter

TOKEN = "sms-gateway-token-0123"


@dataclass
class Gateway:
    """Answers by recipient: +15550000001 200; +15550000002 429 twice, then 200; +15550000003 401."""

    port: int = 0
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    busy: int = 2

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
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
                while len(body) < int(headers.get("content-length", "0")):
                    body += await stream.receive_some(65536)
                msg = json.loads(body)
                self.received.append((headers.get("authorization", ""), msg))
                if msg["to"] == "+15550000003" or headers.get("authorization") != f"Bearer {TOKEN}":
                    status = b"401 Unauthorized"
                elif msg["to"] == "+15550000002" and self.busy > 0:
                    self.busy -= 1
                    status = b"429 Too Many Requests"
                else:
                    status = b"200 OK"
                await stream.send_all(
                    b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
                )


async def test_sms_gateway_200_delivered_429_retried_401_given_up(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", map_size=32 << 20)
    writer = StoreWriter(store)
    async with trio.open_nursery() as nursery:
        gateway: Gateway = await nursery.start(Gateway().serve)
        await nursery.start(writer.run)
        now = datetime.now(UTC)

        def enqueue(txn: Any) -> None:
            for n, order_id in ((1, "W000001"), (2, "W000002"), (3, "W000003")):
                ostore.add_delivery(
                    txn,
                    store,
                    "notices",
                    route="sms",
                    key=order_id,
                    kind="ready",
                    order_id=order_id,
                    payload=f"Order {order_id} is ready".encode(),
                    now=now,
                    to=f"+1555000000{n}",
                )

        await writer.write(enqueue)
        settings = NoticesSection(
            sms="http",
            sms_url=f"http://127.0.0.1:{gateway.port}/messages",
            sms_token=TOKEN,
            timeout_seconds=5,
        )
        notifier = Notifier(settings, "Test Store")
        hub = SimpleNamespace(store=store, writer=writer)
        actor = DeliveryActor(
            hub,  # type: ignore[arg-type]
            "notices",
            notifier.send,
            retry_policy=fast_retry_policy(),
            poll_seconds=0.05,
            session=notifier.session,
        )
        await nursery.start(actor.run)
        with trio.fail_after(20):
            while ostore.deliveries(store, "notices"):  # pending ones
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    by_order = {e.order_id: e for e in ostore.deliveries(store, "notices", unsent_only=False)}
    assert (by_order["W000001"].state, by_order["W000001"].attempts) == ("sent", 1)
    assert (by_order["W000002"].state, by_order["W000002"].attempts) == ("sent", 3)
    assert "429" in actor.last_error or "401" in actor.last_error
    assert (by_order["W000003"].state, by_order["W000003"].attempts) == ("dead", 1)
    assert "401" in by_order["W000003"].last_error
    assert [m["to"] for _, m in gateway.received].count("+15550000002") == 3
    assert all(auth == f"Bearer {TOKEN}" for auth, _ in gateway.received)
    assert {"to": "+15550000001", "message": "Order W000001 is ready"} in [m for _, m in gateway.received]
    store.close()
