"""A scan's snapshot re-encodes what the scan changed (the cart, the gauges), not the register's whole
state: the customer, the parked carts and the last receipt's HTML are encoded once and their bytes reused,
while every snapshot still carries the full state a reconnecting screen needs. No timing is asserted."""

from __future__ import annotations

from collections import Counter

import trio

from hub.app import Hub
from hub.client import connect
from hub.sale import checkin, context, snapshot
from hub.sale import queue as sale_queue
from hub.store import layout
from tests.conftest import PINS, ws_url
from tests.sale.test_sale_live import FLOAT, demo, open_drawer, ready_register, sellable_unit_package


async def test_a_scan_encodes_its_cart_not_the_whole_register_state(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await open_drawer(c)
            # a finished sale first: the screen then shows its receipt (HTML) in every snapshot
            await c.request("scan", data=d.customer("adult").id_scan)
            first = sellable_unit_package(hub, "FLW-001")
            await c.request("scan", data=first.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            paid = await c.request(
                "pay", tenders=[{"kind": "cash", "amount_cents": snap["state"]["cart"]["total_cents"]}]
            )
            await c.request("scan", data=d.customer("adult").id_scan)
            pkg = sellable_unit_package(hub, "FLW-001")
            await c.request("scan", data=pkg.tag)
            await c.wait_snapshot(lambda s: s["last_receipt"] and s["cart"] and s["cart"]["lines"])
            before = Counter(snapshot.part_builds)

            await c.request("add_package", tag=pkg.tag)  # the scan under test: one more unit
            snap = await c.wait_snapshot(
                lambda s: s["last_receipt"] and s["cart"] and s["cart"]["lines"][0]["quantity"] == 2
            )

            built = Counter({name: n for (reg, name), n in snapshot.part_builds.items() if reg == "R1"})
            built.subtract({name: n for (reg, name), n in before.items() if reg == "R1"})
            assert built["cart"] >= 1 and built["allotment"] >= 1
            assert built["customer"] == 0 and built["last_receipt"] == 0 and built["parked"] == 0
            # the snapshot is still the whole state, reused parts included
            state = snap["state"]
            assert state["customer"]["type"] == "adult" and state["customer"]["decision"]["allowed"]
            assert state["last_receipt"]["number"] == paid["receipt_number"]
            assert pkg.tag in state["cart"]["lines"][0]["tag"] and state["parked"] == []
            assert next(g for g in state["allotment"] if g["bucket"] == "non-concentrated")["used"] > 0


async def test_the_drawer_is_read_when_it_changes_not_on_every_snapshot(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await c.wait_snapshot(lambda s: s["drawer"] and s["drawer"]["open"] is False)
            opened = await c.request("open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])
            snap = await c.wait_snapshot(lambda s: s["drawer"]["open"] is True)
            assert snap["state"]["drawer"]["session_id"] == opened["session_id"]
            before = snapshot.part_builds["R1", "drawer"]
            await c.request("scan", data=d.customer("adult").id_scan)
            pkg = sellable_unit_package(hub, "FLW-001")
            await c.request("scan", data=pkg.tag)
            await c.request("add_package", tag=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"][0]["quantity"] == 2)
            assert snap["state"]["drawer"] == {"open": True, "session_id": opened["session_id"]}
            assert snapshot.part_builds["R1", "drawer"] == before


async def test_a_scan_writes_the_cart_row_not_the_whole_sale(store_hub: Hub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A cart edit persists the open cart (layout.OPEN_CARTS) and nothing of the customer or the parked
    carts: the whole sale is encoded and written by a check-in, a park or an end, never by a scan."""
    hub = store_hub
    d = demo(hub)
    whole: list[str] = []
    real = context.sale_writer

    def counted(sale, store):  # type: ignore[no-untyped-def]
        whole.append(sale.register_id)
        return real(sale, store)

    for module in (context, checkin, sale_queue):
        monkeypatch.setattr(module, "sale_writer", counted)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await c.request("scan", data=d.customer("adult").id_scan)
            assert whole == ["R1"]  # the check-in writes the sale
            pkg = sellable_unit_package(hub, "FLW-001")
            await c.request("scan", data=pkg.tag)
            await c.request("add_package", tag=pkg.tag)
            await c.request("set_quantity", line=1, quantity=1)
            assert whole == ["R1"]  # three cart edits: the cart's row only
            assert await hub.writer.flush()
            row = layout.OPEN_CARTS.read(hub.store, "R1")
            assert row is not None and row.cart.lines[0].quantity == 1
            await c.request("end_customer")
            assert whole == ["R1", "R1"]
            assert await hub.writer.flush()
            assert layout.OPEN_CARTS.read(hub.store, "R1") is None  # no open cart is left behind


async def test_whole_and_cart_saves_in_one_batch_keep_both_rows(store_hub: Hub) -> None:
    """A park, a recall (whole saves) and a quantity (a cart-only save) land in one writer batch: the writer
    skips a save a later one of the same state makes unneeded, and a cart-only save must never make the
    recall's sale row unneeded. The store then reads back exactly the sale the register holds."""
    hub = store_hub
    d = demo(hub)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await c.request("scan", data=d.customer("adult").id_scan)
            pkg = sellable_unit_package(hub, "FLW-001")
            await c.request("scan", data=pkg.tag)
            parked = await c.request("park_cart")
            await c.request("recall_cart", cart_id=parked["cart_id"])
            await c.request("set_quantity", line=1, quantity=2)
            assert await hub.writer.flush()
            held = hub.registers["R1"].sale
            assert held is not None and held.parked == [] and held.cart is not None
            stored = context.load_sale(hub.store, "R1")
            assert stored.parked == [] and stored.customer is None is held.customer
            assert stored.cart == held.cart and stored.cart.lines[0].quantity == 2
