"""The sale over the live protocol, as a register drives it: hub.client against a real hub."""

from __future__ import annotations

import msgspec
import pytest
import trio

from hub.app import Hub
from hub.client import ClientError, HubClient, connect
from hub.domain.catalog import Package
from hub.domain.demo_catalogue import DemoStore
from hub.domain.outbox import OutboxEntry
from hub.domain.receipt import SaleRecord
from hub.domain.state_payloads import StateSale
from hub.sale import inventory
from hub.store.env import decode
from hub.store.keys import u64
from hub.wiring import Features, SaleOptions
from tests.conftest import DEMO_PAIRING, PINS, ws_url

FLOAT = {"B20": 10, "B5": 10, "C25": 40}  # $260.00


def demo(hub: Hub) -> DemoStore:
    return hub.services.demo.store  # type: ignore[no-any-return]


async def ready_register(c: HubClient, register: str = "R1", staff: str = "maria") -> None:
    await c.pair(DEMO_PAIRING[register])
    await c.login(staff, PINS[staff])


async def open_drawer(c: HubClient) -> None:
    await c.request("open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])


def sellable_unit_package(hub: Hub, product_id: str, skip: set[str] = frozenset()) -> Package:  # type: ignore[assignment]
    pkgs = inventory.packages_of(hub.store, product_id)
    return next(
        p
        for p in pkgs
        if p.status == "active" and p.quantity > 2 and p.lab_testing == "passed" and p.tag not in skip
    )


def outbox(hub: Hub) -> list[OutboxEntry]:
    with hub.store.read() as txn:
        return [decode(v, OutboxEntry) for _, v in txn.cursor(db=hub.store.db("outbox"))]


async def test_complete_cash_sale(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await open_drawer(c)
            res = await c.request("scan", data=d.customer("adult").id_scan)
            assert res["kind"] == "id" and res["allowed"] is True
            pkg = sellable_unit_package(hub, "FLW-001")
            before = pkg.quantity
            await c.request("scan", data=pkg.tag)
            await c.request("add_package", tag=pkg.tag)  # a second unit of the same package
            snap = await c.wait_snapshot(
                lambda s: s["cart"] and s["cart"]["lines"] and s["cart"]["lines"][0]["quantity"] == 2
            )
            cart = snap["state"]["cart"]
            total = cart["total_cents"]
            assert cart["subtotal_cents"] == 2 * 3800
            assert total == cart["subtotal_cents"] - cart["discount_cents"] + cart["tax_cents"]
            gauge = next(g for g in snap["state"]["allotment"] if g["bucket"] == "non-concentrated")
            assert gauge["limit"] == 28_500 and gauge["remaining"] == 28_500 - 7_000
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total + 1234}])
            assert paid["change_cents"] == 1234
            snap = await c.wait_snapshot(lambda s: s["last_receipt"] is not None)
            receipt = snap["state"]["last_receipt"]
            assert receipt["number"] == paid["receipt_number"]
            assert pkg.tag in receipt["html"] and "C10-0000001-LIC" in receipt["html"]
            assert snap["state"]["cart"] is None and snap["state"]["customer"] is None
    after = inventory.package(hub.store, pkg.tag)
    assert after is not None and after.quantity == before - 2
    # a consenting customer earns loyalty points: one per whole dollar before tax
    customer = d.customer("adult").customer
    now_points = hub.store.get("customers", customer.id.encode(), type(customer)).loyalty_points  # type: ignore[union-attr]
    assert now_points == customer.loyalty_points + (2 * 3800) // 100
    record = hub.store.get("sales", u64(paid["receipt_number"]), SaleRecord)
    assert record is not None and record.receipt.total_cents == total
    [entry] = [e for e in outbox(hub) if e.kind == "sale"]
    state_sale = decode(entry.payload, StateSale)
    assert [(ln.package_label, ln.units) for ln in state_sale.lines] == [(pkg.tag, 2)]
    assert entry.idempotency_key == f"C10-0000001-LIC-{paid['receipt_number']}"


async def test_weighed_sale_uses_stable_reading_only(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    bulk = next(p for p in d.products if p.sold_by == "weight" and p.category == "flower")
    pkg = next(
        p
        for p in inventory.packages_of(hub.store, bulk.id)
        if p.status == "active" and p.lab_testing == "passed" and p.quantity > 10_000
    )
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await open_drawer(c)
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("demo_scale", weight_mg=3_512, motion=True)
            with pytest.raises(ClientError) as e:
                await c.request("weigh_line", tag=pkg.tag)
            assert e.value.code == "scale_motion"
            # a budtender cannot type a weight without a manager
            with pytest.raises(ClientError) as e:
                await c.request(
                    "manual_weight",
                    tag=pkg.tag,
                    weight_mg=3500,
                    approval={"manager": "ana", "pin": PINS["ana"], "reason": "scale broken"},
                )
            assert e.value.code == "approval_refused"
            await c.request("demo_scale", weight_mg=3_512, motion=False)
            await c.request("weigh_line", tag=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            line = snap["state"]["cart"]["lines"][0]
            assert line["weight_mg"] == 3_512 and line["weight_source"] == "scale"
            assert line["total_cents"] > 0
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 100_00}])
    assert inventory.package(hub.store, pkg.tag).quantity == pkg.quantity - 3_512  # type: ignore[union-attr]
    entry = [e for e in outbox(hub) if e.kind == "sale"][-1]
    sale = decode(entry.payload, StateSale)
    assert sale.lines[0].unit_of_measure == "Grams" and sale.lines[0].quantity_mg == 3_512
    assert paid["receipt_number"] >= 1


async def test_over_limit_refused_with_rule_named(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    pkg = sellable_unit_package(hub, "FLW-001")  # 3.5 g each; CA allows 28.5 g non-concentrated a day
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag, quantity=8)  # 28 g: allowed
            with pytest.raises(ClientError) as e:
                await c.request("set_quantity", line=1, quantity=9)  # 31.5 g
            assert e.value.code == "over_limit"
            assert "non-concentrated cannabis 31.5 g of 28.5 g per day" in e.value.message
            # the refusal is on the screen too, and the cart kept its 8 units
            snap = await c.wait_snapshot(lambda s: s["notice"] and s["notice"]["level"] == "error")
            assert snap["state"]["cart"]["lines"][0]["quantity"] == 8
            assert "31.5 g of 28.5 g" in snap["state"]["notice"]["text"]


async def test_expired_id_and_package_states_refused(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            res = await c.request("scan", data=d.customer("expired_id").id_scan)
            assert res["allowed"] is False and "expired" in res["reasons"][0]
            with pytest.raises(ClientError) as e:
                await c.request("add_package", tag=d.scenarios["on_hold"])
            assert e.value.code == "customer_refused"
            await c.request("scan", data=d.customer("adult").id_scan)
            for scenario, code in [
                ("on_hold", "on_hold"),
                ("quarantined", "quarantined"),
                ("expired", "expired"),
                ("lab_failed", "lab_not_passed"),
                ("finished", "finished"),
            ]:
                with pytest.raises(ClientError) as e:
                    await c.request("scan", data=d.scenarios[scenario])
                assert e.value.code == code, scenario
            with pytest.raises(ClientError) as e:
                await c.request("scan", data="1A4000000000000000000999")
            assert e.value.code == "unknown_package"


async def test_void_restores_inventory_and_allotment(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    pkg = sellable_unit_package(hub, "FLW-001")
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c, staff="ana")
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag, quantity=8)
            async with connect(ws_url(hub)) as m:  # the manager opens the drawer at R2 meanwhile
                await ready_register(m, "R2")
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 500_00}])
            assert e.value.code == "no_drawer"
            with pytest.raises(ClientError) as e:
                await open_drawer(c)  # a budtender counting with a technician: no manager involved
            assert e.value.code == "forbidden"
            await c.request("open_drawer", counted=FLOAT, witness="maria", witness_pin=PINS["maria"])
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 500_00}])
            assert inventory.package(hub.store, pkg.tag).quantity == pkg.quantity - 8  # type: ignore[union-attr]
            # the allotment is used up: one more 3.5 g is over
            await c.request("scan", data=d.customer("adult").id_scan)
            with pytest.raises(ClientError) as e:
                await c.request("add_package", tag=pkg.tag)
            assert e.value.code == "over_limit"
            with pytest.raises(ClientError) as e:
                await c.request(
                    "void_sale",
                    receipt_number=paid["receipt_number"],
                    approval={"manager": "maria", "pin": "0000", "reason": "customer changed mind"},
                )
            assert e.value.code == "approval_refused"
            res = await c.request(
                "void_sale",
                receipt_number=paid["receipt_number"],
                approval={"manager": "maria", "pin": PINS["maria"], "reason": "customer changed mind"},
            )
            assert res["refund_cents"] > 0
            # allotment back: the same customer may buy again
            await c.request("add_package", tag=pkg.tag)
    assert inventory.package(hub.store, pkg.tag).quantity == pkg.quantity  # type: ignore[union-attr]
    kinds = [e.kind for e in outbox(hub)]
    assert kinds == ["sale", "void"]
    assert hub.store.get("sales", u64(paid["receipt_number"]), SaleRecord).voided  # type: ignore[union-attr]


async def test_register_reconnects_mid_sale_and_finds_its_cart(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    pkg = sellable_unit_package(hub, "FLW-001")
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c, staff="ana")
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag, quantity=2, id="add-1")
            token, session = c.device_token, c.session_token
        async with connect(ws_url(hub)) as c:
            hello = await c.hello(token, session)
            assert hello["resumed"] is True
            snap = await c.wait_snapshot(lambda s: s.get("cart") is not None)
            assert snap["state"]["cart"]["lines"][0]["quantity"] == 2
            # the browser retries the add it never heard back about: applied once
            await c.request("add_package", tag=pkg.tag, quantity=2, id="add-1")
            snap = await c.wait_snapshot(lambda s: s.get("cart") is not None)
            assert snap["state"]["cart"]["lines"][0]["quantity"] == 2


async def test_cart_survives_hub_restart(hub_factory, config, tmp_path) -> None:  # type: ignore[no-untyped-def]

    config.server.demo = True
    hub = await hub_factory(config, features=Features(sale=SaleOptions(demo=True)))
    d = demo(hub)
    pkg = sellable_unit_package(hub, "FLW-001")
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c, staff="ana")
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag, quantity=3)
            token = c.device_token
        hub.stop()
        while hub.ready:
            await trio.sleep(0.01)
        await trio.sleep(0.2)
        hub2 = await hub_factory(config, seed=False, features=Features(sale=SaleOptions(demo=True)))
        async with connect(ws_url(hub2)) as c:
            await c.hello(token)  # a restarted hub has no staff sessions: log in again
            await c.login("ana", PINS["ana"])
            snap = await c.wait_snapshot(lambda s: s.get("cart") is not None)
            assert snap["state"]["cart"]["lines"][0]["quantity"] == 3
            assert snap["state"]["customer"]["decision"]["allowed"] is True


async def test_two_registers_sell_the_last_unit_exactly_one_succeeds(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    tag = d.scenarios["last_unit"]
    assert inventory.package(hub.store, tag).quantity == 1  # type: ignore[union-attr]
    results: dict[str, object] = {}
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as r1, connect(ws_url(hub)) as r2:
            await ready_register(r1, "R1")
            await ready_register(r2, "R2")
            for c, who in ((r1, "adult"), (r2, "medical")):
                await open_drawer(c)
                await c.request(
                    "scan", data=d.customer("adult" if who == "adult" else "non_resident").id_scan
                )
                await c.request("add_package", tag=tag)

            async def pay(name: str, c: HubClient) -> None:
                try:
                    results[name] = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 200_00}])
                except ClientError as exc:
                    results[name] = exc

            async with trio.open_nursery() as n:
                n.start_soon(pay, "R1", r1)
                n.start_soon(pay, "R2", r2)
    wins = [r for r in results.values() if isinstance(r, dict)]
    losses = [r for r in results.values() if isinstance(r, ClientError)]
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0].code in ("finished", "short")
    assert inventory.package(hub.store, tag).quantity == 0  # type: ignore[union-attr]
    assert len([e for e in outbox(hub) if e.kind == "sale"]) == 1


async def test_demo_panel_scans_offered(store_hub: Hub) -> None:
    import httpx

    from hub.domain.aamva import parse_licence

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{store_hub.http_port}") as http:
        with trio.fail_after(10):
            scans = (await http.get("/api/demo/scans")).json()
    ids = [s for s in scans if s["kind"] == "id"]
    assert len(ids) == len(demo(store_hub).customers)
    assert all(parse_licence(s["data"]) for s in ids)
    assert any(s["data"] == demo(store_hub).scenarios["on_hold"] for s in scans)


async def test_promotions_as_data_apply_in_the_cart(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    preroll = next(p for p in d.products if p.category == "pre-roll" and p.sold_by == "each")
    topical = next(p for p in d.products if p.category == "topical")
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_product", product_id=preroll.id, quantity=3)
            await c.request("add_product", product_id=topical.id)
            snap = await c.wait_snapshot(lambda s: s["cart"] and len(s["cart"]["lines"]) == 2)
    lines = {ln["product"]: ln for ln in snap["state"]["cart"]["lines"]}
    # buy 2, get 1 half off: one of the three pre-rolls at 50 %
    assert lines[preroll.name]["discount_cents"] == preroll.price_cents // 2
    # topicals 15 % off
    assert lines[topical.name]["discount_cents"] == (topical.price_cents * 15 + 50) // 100


async def test_a_product_stored_with_its_upc_e_is_added_by_scanning_that_upc_e(store_hub: Hub) -> None:
    """A catalogue row holding the printed 8-digit UPC-E (issue 18's `04963406`): the scan looks the product
    up by the UPC-A it expands to (049000006346), so the product write stores that form."""
    hub = store_hub
    d = demo(hub)
    product = inventory.product(hub.store, "FLW-001")
    assert product is not None
    stored = msgspec.structs.replace(product, barcode="04963406")
    await hub.writer.write(lambda txn: inventory.put_product(txn, hub.store, stored), label="t")
    assert inventory.product_by_barcode(hub.store, "049000006346").id == "FLW-001"  # type: ignore[union-attr]
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await c.request("scan", data=d.customer("adult").id_scan)
            res = await c.request("scan", data="04963406")
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
    lines = snap["state"]["cart"]["lines"]
    assert [ln["product"] for ln in lines] == [product.name] and lines[0]["quantity"] == 1, res
