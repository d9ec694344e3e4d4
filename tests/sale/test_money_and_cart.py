"""Money and the cart at the edges (issue 11): a failed command leaves the register as it was, Weigh on a
weighed line re-weighs it, change comes out of the cash the drawer holds, a full disk is its own error."""

from __future__ import annotations

from typing import Any

import httpx
import lmdb
import pytest
import trio

from hub.app import Hub
from hub.client import ClientError, HubClient, connect
from hub.sale import context as sale_service
from hub.sale import inventory
from hub.store.writer import WriteRequest
from tests.conftest import ws_url
from tests.sale.test_sale_live import demo, open_drawer, ready_register, sellable_unit_package


async def _checked_in(c: HubClient, hub: Hub) -> None:
    await ready_register(c)
    await open_drawer(c)
    res = await c.request("scan", data=demo(hub).customer("adult").id_scan)
    assert res["allowed"] is True


def _sup_child(hub: Hub, name: str) -> Any:
    assert hub.supervisor is not None
    return hub.supervisor.children[name]


async def test_discount_of_2_64_on_an_empty_cart_leaves_the_register_usable(store_hub: Hub) -> None:
    hub = store_hub
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await _checked_in(c, hub)
            with pytest.raises(ClientError) as e:
                await c.request("apply_discount", kind="fixed", value=2**64, reason="attack")
            assert e.value.code != "internal_error"  # refused as bad input, the register not crashed
            assert _sup_child(hub, "register:R1").restarts == 0
            pkg = sellable_unit_package(hub, "FLW-001")
            await c.request("add_package", tag=pkg.tag)  # main: every later change crashed the register
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            cart = snap["state"]["cart"]
            assert cart["discount_cents"] == 0 and len(cart["lines"]) == 1
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": cart["total_cents"]}])
            assert paid["change_cents"] == 0


async def test_any_failed_save_rolls_the_cart_back(store_hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever makes a command fail after it changed the cart in memory (here: saving it raises), the
    register goes back to the cart it had, and the next change works."""
    hub = store_hub
    real_encode = sale_service.encode

    def encode(value: Any) -> bytes:
        cart = getattr(value, "cart", None)
        if cart is not None and any(d.reason == "boom boom" for d in cart.cart_discounts):
            raise RuntimeError("the save failed")
        return real_encode(value)

    monkeypatch.setattr(sale_service, "encode", encode)
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await _checked_in(c, hub)
            pkg = sellable_unit_package(hub, "FLW-001")
            await c.request("add_package", tag=pkg.tag)
            with pytest.raises(ClientError):
                await c.request("apply_discount", kind="percent", value=5, reason="boom boom")
            await c.request("add_package", tag=pkg.tag)
            snap = await c.wait_snapshot(
                lambda s: s["cart"] and s["cart"]["lines"] and s["cart"]["lines"][0]["quantity"] == 2
            )
            assert snap["state"]["cart"]["discount_cents"] == 0
    sale = sale_service.sale_of(hub.registers["R1"])
    assert sale.cart is not None and not sale.cart.cart_discounts


async def test_weigh_on_a_weighed_line_reweighs_it(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    bulk = next(p for p in d.products if p.sold_by == "weight" and p.category == "flower")
    pkg = next(
        p
        for p in inventory.packages_of(hub.store, bulk.id)
        if p.status == "active" and p.lab_testing == "passed" and p.quantity > 10_000
    )
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await _checked_in(c, hub)
            await c.request("demo_scale", weight_mg=3_512, motion=False)
            await c.request("weigh_line", tag=pkg.tag)
            first = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            line_id = first["state"]["cart"]["lines"][0]["line"]
            # the budtender takes a bud off and presses Weigh on the line again (what the button sends)
            await c.request("demo_scale", weight_mg=3_005, motion=False)
            await c.request("weigh_line", tag=pkg.tag, line=line_id)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"][0]["weight_mg"] == 3_005)
            lines = snap["state"]["cart"]["lines"]
            assert len(lines) == 1 and lines[0]["line"] == line_id
            # an older client sends the tag only: still the same line, re-weighed
            await c.request("demo_scale", weight_mg=2_990, motion=False)
            await c.request("weigh_line", tag=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"][0]["weight_mg"] == 2_990)
            assert len(snap["state"]["cart"]["lines"]) == 1
            assert snap["state"]["cart"]["total_cents"] < first["state"]["cart"]["total_cents"]
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 100_00}])
    assert inventory.package(hub.store, pkg.tag).quantity == pkg.quantity - 2_990  # type: ignore[union-attr]
    assert paid["receipt_number"] >= 1


async def test_change_beyond_the_drawer_cash_is_refused(store_hub: Hub) -> None:
    hub = store_hub
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await _checked_in(c, hub)  # the float is $260.00
            pkg = sellable_unit_package(hub, "FLW-001")
            await c.request("add_package", tag=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            total = snap["state"]["cart"]["total_cents"]
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 1000_00}])
            assert e.value.code == "not_enough_change"
            assert "change" in str(e.value) and "260" not in str(e.value)  # the blind count stays blind
            # the cart is still there: a smaller note pays it
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total + 260_00}])
            assert paid["change_cents"] == 260_00


def _fail_commits_with(hub: Hub, exc: BaseException, labels: set[str]) -> list[bool]:
    """Make the writer's commits of batches holding one of ``labels`` fail as a full disk would; returns
    a switch (clear it to give the disk its space back)."""
    writer = hub.writer
    real = writer._run_batch
    on = [True]

    def run_batch(batch: list[WriteRequest]) -> None:
        if on and (labels == {"*"} or any(r.label in labels for r in batch)):
            raise exc
        real(batch)

    writer._run_batch = run_batch  # type: ignore[method-assign]
    return on


async def test_disk_full_is_its_own_error_and_selling_resumes_by_itself(store_hub: Hub) -> None:
    hub = store_hub
    http = f"http://127.0.0.1:{hub.http_port}/healthz"
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c, httpx.AsyncClient(timeout=5) as web:
            await ready_register(c)
            await open_drawer(c)
            restarts = _sup_child(hub, "register:R1").restarts
            full = _fail_commits_with(hub, lmdb.DiskError("mdb_txn_commit: No space left on device"), {"*"})
            for _ in range(4):  # more than the supervisor's intensity: the register must not be parked
                with pytest.raises(ClientError) as e:
                    await c.request("scan", data=demo(hub).customer("adult").id_scan)
                assert e.value.code == "storage_full"
                assert "disk is full" in str(e.value)
            child = _sup_child(hub, "register:R1")
            assert child.running and not child.parked and child.restarts == restarts
            r = await web.get(http)
            assert r.status_code == 503
            assert r.json()["status"] == "storage_full" and "disk is full" in r.json()["reason"]
            # the failed check-in left nobody at the counter
            assert sale_service.sale_of(hub.registers["R1"]).customer is None
            full.clear()  # space returns
            while (await web.get(http)).status_code != 200:
                await trio.sleep(0.1)
            res = await c.request("scan", data=demo(hub).customer("adult").id_scan)
            assert res["allowed"] is True
            pkg = sellable_unit_package(hub, "FLW-001")
            await c.request("add_package", tag=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            paid = await c.request(
                "pay", tenders=[{"kind": "cash", "amount_cents": snap["state"]["cart"]["total_cents"]}]
            )
            assert paid["receipt_number"] >= 1


async def test_map_full_beyond_growth_is_a_storage_error(store_hub: Hub) -> None:
    hub = store_hub
    hub.store.grow = lambda: hub.store.map_size  # type: ignore[method-assign]
    _fail_commits_with(hub, lmdb.MapFullError("mdb_put: MDB_MAP_FULL"), {"check_in"})
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            with pytest.raises(ClientError) as e:
                await c.request("scan", data=demo(hub).customer("adult").id_scan)
            assert e.value.code == "storage_full"
    assert hub.writer.storage_problem is not None
