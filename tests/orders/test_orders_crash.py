"""Kill -9 of ``storehub demo`` in the middle of a pick: after a restart on the same data every acknowledged
pick and every reservation is there (the index equal to what the orders hold), and picking goes on."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import lmdb
import trio

from hub.client import HubClient, connect
from hub.domain import signing
from hub.domain.catalog import Package
from hub.domain.orders import Order, ProductReservations, holdings
from hub.orders.api import DEMO_CHANNEL, DEMO_SECRET
from hub.store.env import decode
from tests.support.hubproc import start_demo


def table(data: Path, name: str) -> list[tuple[str, bytes]]:
    env = lmdb.open(str(data), readonly=True, max_dbs=64, lock=True)
    try:
        db = env.open_db(name.encode(), create=False)
        with env.begin(db=db) as txn:
            return [(bytes(k).decode(), bytes(v)) for k, v in txn.cursor()]
    finally:
        env.close()


def orders_of(data: Path) -> dict[str, Order]:
    return {k: decode(v, Order) for k, v in table(data, "orders")}


def tags_for(data: Path, product_id: str) -> list[str]:
    pkgs = [decode(v, Package) for _, v in table(data, "packages")]
    return [
        p.tag
        for p in pkgs
        if p.product_id == product_id
        and p.status == "active"
        and p.quantity >= 2
        and p.lab_testing in ("passed", "retest_passed", "not_required")
    ]


async def pick_list(http: int, oid: str) -> dict[str, Any]:
    h = signing.signed_headers(DEMO_CHANNEL, DEMO_SECRET, int(time.time()), b"")
    async with httpx.AsyncClient(timeout=5) as c:
        r = await c.get(f"http://127.0.0.1:{http}/api/v1/orders/{oid}", headers=h)
    return {row["category"]: row for row in r.json()["pick_list"]}


def index_matches_orders(data: Path) -> None:
    index = {k: decode(v, ProductReservations) for k, v in table(data, "order_reservations")}
    expected: dict[str, dict[str, Any]] = {}
    for oid, o in orders_of(data).items():
        for pid, h in holdings(o).items():
            expected.setdefault(pid, {})[oid] = h
    assert {pid: r.orders for pid, r in index.items()} == expected


async def test_kill_minus_nine_mid_pick_loses_no_reservation_and_no_pick(tmp_path: Path) -> None:
    data = tmp_path / "data"
    demo = await start_demo(data, sandbox=False, start_s=20)
    proc, ws, http = demo.proc, demo.ws_port, demo.http_port
    try:
        rows = await pick_list(http, "W000001")
        preroll_tag = tags_for(data, rows["pre-roll"]["product_id"])[0]
        edible_tag = tags_for(data, rows["edible"]["product_id"])[0]
        with trio.fail_after(30):
            async with connect(f"ws://127.0.0.1:{ws}") as c:
                paired = await c.pair("44444444")
                await c.login("tom", "2222")
                await c.request("claim_order", order_id="W000001")
                await c.request("pick_scan", order_id="W000001", data=preroll_tag)
                proc.send_signal(signal.SIGKILL)  # acknowledged: it must survive
        with trio.fail_after(10):
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    o = orders_of(data)["W000001"]
    assert o.state == "picking" and o.picker == "P1"
    line = next(ln for ln in o.lines if ln.product_id == rows["pre-roll"]["product_id"])
    assert [p.tag for p in line.picks] == [preroll_tag]
    index_matches_orders(data)
    accepted = orders_of(data)["W000002"]
    assert accepted.state == "accepted" and all(ln.reserved == ln.quantity for ln in accepted.lines)

    demo = await start_demo(data, sandbox=False, start_s=20)

    proc, ws, http = demo.proc, demo.ws_port, demo.http_port
    try:
        with trio.fail_after(30):
            async with connect(f"ws://127.0.0.1:{ws}") as c:
                await resume(c, paired["device_token"])
                snap = await c.wait_snapshot(lambda s: s.get("picker", {}).get("holding") is not None)
                assert snap["state"]["picker"]["holding"]["id"] == "W000001"
                await c.request("pick_scan", order_id="W000001", data=edible_tag)
        o = orders_of(data)["W000001"]
        assert sum(len(ln.picks) for ln in o.lines) == 2
        index_matches_orders(data)
        # the demo panel's button: a new web order, signed by the demo channel, through the intake
        async with httpx.AsyncClient(timeout=10) as http_client:
            r = await http_client.post(f"http://127.0.0.1:{http}/api/demo/orders")
        assert r.status_code == 201, r.text
        assert orders_of(data)[r.json()["order_id"]].channel == DEMO_CHANNEL
    finally:
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            await proc.wait()


async def resume(c: HubClient, device_token: str) -> None:
    await c.hello(device_token)
    await c.login("tom", "2222")
