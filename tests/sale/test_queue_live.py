"""The customer queue over the live protocol: registers driven as the browser drives them."""

from __future__ import annotations

import pytest
import trio

from hub import audit
from hub.app import Hub
from hub.client import ClientError, connect
from hub.sale.queue import load_stored
from hub.wiring import Features, SaleOptions
from tests.conftest import PINS, ws_url
from tests.sale.test_sale_live import demo, open_drawer, ready_register, sellable_unit_package


async def test_two_customers_checked_in_first_served_second_waits_with_allotment(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    pkg = sellable_unit_package(hub, "FLW-001")
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as r1, connect(ws_url(hub)) as r2:
            await ready_register(r1, "R1", "ana")
            await ready_register(r2, "R2", "maria")
            await open_drawer(r2)
            # R1 is busy with a sale; two more customers' IDs are scanned there
            at_counter = await r1.request("scan", data=d.customer("adult").id_scan)
            await r1.request("add_package", tag=pkg.tag)
            first = await r1.request("scan", data=d.customer("medical").id_scan)
            second = await r1.request("scan", data=d.customer("non_resident").id_scan)
            assert first["queued"] is True and second["queued"] is True
            assert first["ticket"] != second["ticket"]
            # every register sees both, the medical customer marked, with their allotment and waiting time
            snap = await r2.wait_snapshot(lambda s: len(s.get("queue") or []) == 2)
            q = snap["state"]["queue"]
            assert [w["ticket"] for w in q] == [first["ticket"], second["ticket"]]
            assert q[0]["medical"] is True and q[1]["medical"] is False
            assert all(w["waiting_minutes"] == 0 for w in q)
            assert q[1]["allotment"] and all(g["remaining_text"] for g in q[1]["allotment"])
            # R2 takes the next one: the first in line
            taken = await r2.request("take_customer")
            assert taken["ticket"] == first["ticket"]
            snap = await r2.wait_snapshot(
                lambda s: s["customer"] is not None and len(s.get("queue") or []) == 1
            )
            assert snap["state"]["customer"]["label"] == first["label"]
            await r2.request("add_package", tag=pkg.tag)
            snap = await r2.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            total = snap["state"]["cart"]["total_cents"]
            await r2.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
            snap = await r2.wait_snapshot(lambda s: s["last_receipt"] is not None and s["customer"] is None)
            # the second is still waiting, with their allotment, on both registers
            for c in (r1, r2):
                snap = await c.wait_snapshot(lambda s: len(s.get("queue") or []) == 1)
                [waiting] = snap["state"]["queue"]
                assert waiting["ticket"] == second["ticket"] and waiting["label"] == second["label"]
                gauge = next(g for g in waiting["allotment"] if g["bucket"] == "non-concentrated")
                assert gauge["remaining_text"]
            # R1's own sale was never touched by the two scans
            snap = await r1.wait_snapshot(lambda s: s["cart"] is not None)
            assert snap["state"]["customer"]["label"] == at_counter["label"]
            assert [ln["tag"] for ln in snap["state"]["cart"]["lines"]] == [pkg.tag]
    stored = load_stored(hub)
    assert stored is not None and [w.ticket for w in stored.waiting] == [second["ticket"]]


async def test_second_id_mid_sale_queues_instead_of_switching_the_customer(store_hub: Hub) -> None:
    """Issue 11: a second ID scan mid-sale silently switched the customer (the cart then counted against
    the new one). Now it joins the queue; serving them at once parks the cart for the first."""
    hub = store_hub
    d = demo(hub)
    pkg = sellable_unit_package(hub, "FLW-001")
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            first = await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag, quantity=2)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            gauges_before = snap["state"]["allotment"]
            res = await c.request("scan", data=d.customer("non_resident").id_scan)
            assert res["queued"] is True
            snap = await c.wait_snapshot(lambda s: len(s.get("queue") or []) == 1)
            st = snap["state"]
            assert st["customer"]["label"] == first["label"]  # the customer at the counter is unchanged
            assert st["cart"]["lines"][0]["quantity"] == 2
            assert st["allotment"] == gauges_before  # the cart still counts against the first customer
            # a serial scanner's licence too (the hub reads it as bytes)
            by_serial = await c.request("scan", data=d.customer("medical").id_scan, source="serial")
            assert by_serial["queued"] is True
            await c.request("leave_queue", ticket=by_serial["ticket"])
            # the same person's ID again is not a second customer
            again = await c.request("scan", data=d.customer("adult").id_scan)
            assert again.get("queued") is None
            # a refused second ID neither waits nor touches the sale
            refused = await c.request("scan", data=d.customer("under_21").id_scan)
            assert refused["allowed"] is False and not refused.get("queued")
            # taking the next customer while busy must be explicit
            with pytest.raises(ClientError) as e:
                await c.request("take_customer")
            assert e.value.code == "register_busy"
            # "serve now": the first customer's cart is parked (kept for them), the second is served
            taken = await c.request("take_customer", ticket=res["ticket"], park_current=True)
            assert taken["parked_cart"]
            snap = await c.wait_snapshot(
                lambda s: s["customer"] is not None and s["customer"]["label"] == res["label"]
            )
            st = snap["state"]
            assert st["cart"] is None and st["queue"] == []
            assert [p["cart_id"] for p in st["parked"]] == [taken["parked_cart"]]
            with pytest.raises(ClientError) as e:
                await c.request("take_customer", ticket=res["ticket"], park_current=True)
            assert e.value.code == "queue_empty"
    raw = b"".join(v for _, v in audit.iter_entries(hub.store))
    assert b"queue_join" in raw and b"queue_take" in raw


async def test_leave_queue_and_queue_survives_restart(hub_factory, config) -> None:  # type: ignore[no-untyped-def]

    config.server.demo = True
    hub = await hub_factory(config, features=Features(sale=SaleOptions(demo=True)))
    d = demo(hub)
    pkg = sellable_unit_package(hub, "FLW-001")
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag)
            a = await c.request("scan", data=d.customer("medical").id_scan)
            b = await c.request("scan", data=d.customer("non_resident").id_scan)
            await c.request("leave_queue", ticket=a["ticket"])
            snap = await c.wait_snapshot(
                lambda s: [w["ticket"] for w in s.get("queue") or []] == [b["ticket"]]
            )
            assert snap["state"]["queue"][0]["label"] == b["label"]
            with pytest.raises(ClientError) as e:
                await c.request("leave_queue", ticket=a["ticket"])
            assert e.value.code == "not_waiting"
            token = c.device_token
        hub.stop()
        while hub.ready:
            await trio.sleep(0.01)
        await trio.sleep(0.2)
        hub2 = await hub_factory(config, seed=False, features=Features(sale=SaleOptions(demo=True)))
        async with connect(ws_url(hub2)) as c:
            await c.hello(token)
            await c.login("maria", PINS["maria"])
            snap = await c.wait_snapshot(lambda s: len(s.get("queue") or []) == 1)
            assert snap["state"]["queue"][0]["ticket"] == b["ticket"]
            # the register's own sale came back too, untouched by the queue
            assert snap["state"]["cart"]["lines"][0]["tag"] == pkg.tag
