"""Input refused at the edge (issue 11): out-of-range numbers answered as a field error before any handler
runs (the register actor never crashes), JSON nesting bounded before decoding, 1007 on invalid UTF-8, a
used id with another command refused, and the Reprint button's `reprint_receipt` handled."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import trio

from hub.app import Hub
from hub.audit import AuditEntry
from hub.client import ClientError, HubClient, connect
from hub.store.env import decode
from tests.conftest import DEMO_PAIRING, PINS, ws_url
from tests.sale.test_sale_live import FLOAT, demo, sellable_unit_package

APPROVAL = {"manager": "maria", "pin": PINS["maria"], "reason": "customer changed mind"}


async def field_error(c: HubClient, type_: str, **fields: Any) -> tuple[str, str | None]:
    with pytest.raises(ClientError) as e:
        await c.request(type_, **fields)
    return e.value.code, e.value.field


def restarts(hub: Hub) -> float:
    return sum(
        s.value for m in hub.metrics.actor_restarts.collect() for s in m.samples if s.name.endswith("_total")
    )


async def sell_one(hub: Hub, c: HubClient) -> int:
    d = demo(hub)
    await c.request("scan", data=d.customer("adult").id_scan)
    pkg = sellable_unit_package(hub, "FLW-001")
    await c.request("add_package", tag=pkg.tag)
    snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
    total = snap["state"]["cart"]["total_cents"]
    paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
    return int(paid["receipt_number"])


async def test_out_of_range_numbers_are_field_errors_and_crash_nothing(store_hub: Hub) -> None:
    hub = store_hub
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            for n in (-1, 0, 2**64, 2**63):
                assert await field_error(c, "void_sale", receipt_number=n, approval=APPROVAL) == (
                    "invalid",
                    "receipt_number",
                )
                assert await field_error(
                    c, "return_items", receipt_number=n, lines={"1": 1}, approval=APPROVAL
                ) == ("invalid", "receipt_number")
                assert await field_error(c, "reprint_receipt", receipt_number=n) == (
                    "invalid",
                    "receipt_number",
                )
            assert await field_error(
                c, "apply_discount", kind="fixed", value=2**64, reason="loyal customer"
            ) == (
                "invalid",
                "value",
            )
            code, field = await field_error(
                c, "open_drawer", counted={"B20": 2**62}, witness="tom", witness_pin=PINS["tom"]
            )
            assert code == "invalid" and field is not None and field.startswith("counted")
            code, field = await field_error(c, "set_quantity", line=2**64, quantity=1)
            assert (code, field) == ("invalid", "line")
            # the register still works: a drawer opens and a sale goes through
            await c.request("open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])
            assert await sell_one(hub, c) > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
            assert (await http.get("/healthz")).status_code == 200
    assert restarts(hub) == 0


async def test_deep_json_is_refused_before_decoding(store_hub: Hub) -> None:
    hub = store_hub
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            for frame in (
                "[" * 1000 + "]" * 1000,
                '{"type":"ping","id":"deep","x":' + "[" * 5000 + "]" * 5000 + "}",
                '{"type":"ping","id":"deep2","x":' + '{"a":' * 3000 + "1" + "}" * 3000 + "}",
            ):
                await c.send_raw(frame)
            while len(c.unmatched) < 3:  # errors without an id: the reader keeps them aside
                await trio.sleep(0.02)
            errors = c.unmatched
            assert all(e["code"] == "malformed" and "nests deeper" in e["message"] for e in errors)
            # a bracket inside a string is text, not nesting
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("ana", PINS["ana"])
            res = await c.request("search", query="[" * 70)
            assert res == {"products": []} or "products" in res
            assert (await c.request("ping"))["server_time"]


async def _raw_ws(port: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % port
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(4096)
    assert b" 101" in data.split(b"\r\n", 1)[0]
    return stream


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


async def _close_code(stream: trio.SocketStream) -> int | None:
    """Read server frames until a close frame; its status code (None if TCP closed without one)."""
    buf = b""
    while True:
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            head = 2 + (2 if n == 126 else 8 if n == 127 else 0)
            if len(buf) < head:
                break
            if n == 126:
                n = int.from_bytes(buf[2:4], "big")
            elif n == 127:
                n = int.from_bytes(buf[2:10], "big")
            if len(buf) < head + n:
                break
            opcode, payload, buf = buf[0] & 0x0F, buf[head : head + n], buf[head + n :]
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        buf += chunk


async def test_invalid_utf8_text_frame_closes_with_1007(store_hub: Hub) -> None:
    with trio.fail_after(15):
        stream = await _raw_ws(store_hub.ws_port)
        async with stream:
            await stream.send_all(_masked_frame(0x1, b'{"type":"ping","id":"\xff\xfe"}'))
            assert await _close_code(stream) == 1007
        # the hub is unaffected
        async with connect(ws_url(store_hub)) as c:
            assert (await c.request("ping"))["server_time"]


async def test_a_used_id_with_another_command_is_refused(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            await c.request("open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])
            await c.request("scan", data=d.customer("adult").id_scan)
            pkg = sellable_unit_package(hub, "FLW-001")
            first = await c.request("add_package", id="X-1", tag=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            total = snap["state"]["cart"]["total_cents"]
            with pytest.raises(ClientError) as e:
                await c.request("pay", id="X-1", tenders=[{"kind": "cash", "amount_cents": total}])
            assert e.value.code == "id_reused" and e.value.field == "id"
            # the same command again is still answered from its stored reply, applied once
            assert await c.request("add_package", id="X-1", tag=pkg.tag) == first
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            assert snap["state"]["cart"]["lines"][0]["quantity"] == 1
            # a committed sale's id cannot be re-used for another command either
            paid = await c.request("pay", id="P-1", tenders=[{"kind": "cash", "amount_cents": total}])
            with pytest.raises(ClientError) as e:
                await c.request("report_incident", id="P-1", category="x", description="y")
            assert e.value.code == "id_reused"
            again = await c.request("pay", id="P-1", tenders=[{"kind": "cash", "amount_cents": total}])
            assert again == paid


class _FakeDevices:
    """What reprint needs of the device hub: the register's printer and its job queue."""

    def __init__(self, inbox: trio.MemorySendChannel[Any]) -> None:
        self.paired = {"P1": "R1"}
        self.kinds = {"P1": "printer"}
        self.inboxes = {"P1": inbox}


async def test_reprint_receipt_prints_a_copy_and_is_audited(store_hub: Hub) -> None:
    hub = store_hub
    send, recv = trio.open_memory_channel[Any](8)
    hub.services.devices = _FakeDevices(send)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            await c.request("open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])
            await c.login("ana", PINS["ana"])
            number = await sell_one(hub, c)
            jobs = []
            while True:  # the sale's own receipt may be queued too
                try:
                    jobs.append(recv.receive_nowait())
                except trio.WouldBlock:
                    break
            res = await c.request("reprint_receipt", id="RP-1", receipt_number=number)
            assert res["number"] == number and res["printed"] is True and f"{number}" in res["html"]
            job = recv.receive_nowait()
            assert job.document.header_lines[0] == "*** COPY ***"
            # a retried id prints nothing twice
            assert await c.request("reprint_receipt", id="RP-1", receipt_number=number) == res
            with pytest.raises(trio.WouldBlock):
                recv.receive_nowait()
            with pytest.raises(ClientError) as e:
                await c.request("reprint_receipt", receipt_number=number + 1000)
            assert e.value.code == "not_found"
    with hub.store.read() as txn:
        actions = [decode(v, AuditEntry) for _, v in txn.cursor(db=hub.store.db("audit"))]
    [entry] = [a for a in actions if a.action == "receipt_reprinted"]
    assert entry.staff == "ana" and entry.detail["receipt"] == number
