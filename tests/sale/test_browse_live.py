"""Browsing before anything is typed: category tiles and the products in stock."""

from __future__ import annotations

import pytest
import trio

from hub.app import Hub
from hub.client import ClientError, connect
from tests.conftest import ws_url
from tests.sale.test_sale_live import demo, open_drawer, ready_register, sellable_unit_package


async def test_categories_and_in_stock_products(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            res = await c.request("browse")
            cats = {t["category"]: t for t in res["categories"]}
            assert cats["flower"]["label"] == "Flower" and cats["flower"]["count"] > 0
            assert res["products"] and len(res["products"]) <= 24
            assert all(pr["stock_text"] for pr in res["products"])
            names = [pr["name"].casefold() for pr in res["products"]]
            assert names == sorted(names)
            edibles = await c.request("browse", category="edible", limit=60)
            assert edibles["products"] and {pr["category"] for pr in edibles["products"]} == {"edible"}
            assert len(edibles["products"]) == cats["edible"]["count"]
            # a product with nothing sellable (every package on hold, failed, expired...) is not offered
            offered = {pr["id"] for pr in (await c.request("browse", limit=60))["products"]}
            offered |= {
                pr["id"] for pr in (await c.request("browse", limit=60, category="flower"))["products"]
            }
            sellable = {
                pk.product_id for pk in d.packages if pk.status == "active" and pk.lab_testing == "passed"
            }
            assert offered <= sellable


async def test_look_up_receipt_for_a_return(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    pkg = sellable_unit_package(hub, "FLW-001")
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await open_drawer(c)
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag, quantity=2)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            total = snap["state"]["cart"]["total_cents"]
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total + 338}])
            snap = await c.wait_snapshot(lambda s: s["last_receipt"] is not None)
            assert "Change due $3.38." in snap["state"]["notice"]["text"]  # was "Change due 3.38."
            found = await c.request("look_up_receipt", receipt_number=paid["receipt_number"])
            assert found["total_cents"] == total and not found["voided"] and not found["paid_by_card"]
            [line] = found["lines"]
            assert line["tag"] == pkg.tag and line["quantity"] == 2 and line["returned"] == 0
            assert len(found["sold_at"]) == 16  # to the minute, store time
            with pytest.raises(ClientError) as e:
                await c.request("look_up_receipt", receipt_number=paid["receipt_number"] + 100)
            assert e.value.code == "not_found"
