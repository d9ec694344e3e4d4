"""Imports from the back office show a dry-run diff and write nothing until applied (changes to what the
store holds need confirming), then run with a progress the page polls, and the search finds the new
products without a restart; enrolment at a register prefills from the licence just scanned there; the
register's exit-label command prints the jurisdiction's template."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import trio

from hub import wiring
from hub.access import HandlerTable
from hub.client import connect
from hub.domain.devices import PrintZpl
from hub.domain.labels import field_text
from hub.sale import inventory as inv
from tests.conftest import ws_url
from tests.customers.conftest import Shop, licence, ready

PRODUCTS = """sku,name,brand,category,sold_by,price,thc_pct
NEW-001,Moonrock Pre-Roll 1g,Orbit,pre-roll,each,14.00,31.5
TOP-003,Transdermal Patch 20mg,Mary's,topical,each,13.00,
"""


async def test_import_dry_run_then_apply_with_progress(shop: Shop) -> None:
    hub = shop.hub
    old = inv.product(hub.store, "TOP-003")
    assert old is not None and old.price_cents == 1200
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as office:
            token = await ready(office, "OFFICE", "maria", drawer=False)
            async with shop.rest(token) as http:
                dry = (await http.post("/api/catalogue/import", json={"products_csv": PRODUCTS})).json()
                assert dry["dry_run"] is True and dry["new_products"] == 1
                assert any(c.startswith("product TOP-003: price_cents") for c in dry["changes"])
                assert inv.product(hub.store, "NEW-001") is None  # nothing written
                r = await http.post(
                    "/api/catalogue/import",
                    json={"products_csv": PRODUCTS, "apply": True, "reason": "weekly"},
                )
                assert r.status_code == 400 and r.json()["code"] == "changes_not_confirmed"
                bad = await http.post("/api/catalogue/import", json={"products_csv": "sku,name\nX,Y\n"})
                assert bad.status_code == 400 and "nothing was imported" in bad.json()["message"]
                job = (
                    await http.post(
                        "/api/catalogue/import",
                        json={
                            "products_csv": PRODUCTS,
                            "apply": True,
                            "confirm_changes": True,
                            "reason": "weekly delivery",
                        },
                    )
                ).json()
                while True:
                    p = (await http.get(f"/api/catalogue/import/{job['job']}")).json()
                    assert p["total"] == 2 and 0 <= p["done"] <= 2
                    if p["state"] != "running":
                        break
                    await trio.sleep(0.05)
                assert p["state"] == "done" and p["done"] == 2
            async with connect(ws_url(hub)) as reg:
                await ready(reg, "R1", "ana", drawer=False)
                found = await reg.request("search", query="moonrock")
                assert [x["id"] for x in found["products"]] == ["NEW-001"]
    assert inv.product(hub.store, "TOP-003").price_cents == 1300  # type: ignore[union-attr]
    assert shop.audit("catalogue_imported")[0]["reason"] == "weekly delivery"


async def test_enrol_from_the_licence_just_scanned(shop: Shop) -> None:
    hub = shop.hub
    scan = licence("C3330000001", given="KAI", family="WONG")
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as reg, connect(ws_url(hub)) as other:
            token = await ready(reg, "R1", "ana", drawer=False)
            token2 = await ready(other, "R2", "tom", drawer=False)
            async with shop.rest(token) as http, shop.rest(token2) as http2:
                r = await http.post("/api/customers/licence", json={})
                assert r.status_code == 400 and "Scan the customer's licence first" in r.json()["message"]
                await reg.request("scan", data=scan)
                pre = (await http.post("/api/customers/licence", json={})).json()
                assert (pre["given_name"], pre["family_name"]) == ("Kai", "Wong")
                # another register's scan is not this one's
                assert (await http2.post("/api/customers/licence", json={})).status_code == 400
                c = (await http.post("/api/customers/enrol", json={"consent_profile": True})).json()[
                    "customer"
                ]
                assert c["name"] == "Kai Wong"
                # the register's check-in of the same licence greets them by name now
                await reg.request("end_customer")
                await reg.request("scan", data=scan)
                snap = await reg.wait_snapshot(
                    lambda s: s.get("customer") and s["customer"]["label"].startswith("Kai")
                )
                assert snap["state"]["customer"]["label"].startswith("Kai")


async def test_exit_label_command_prints_the_template(shop: Shop) -> None:
    hub = shop.hub
    send, recv = trio.open_memory_channel[Any](4)
    hub.services.devices = SimpleNamespace(
        inboxes={"lp": send}, paired={"lp": "R1"}, kinds={"lp": "label_printer"}
    )
    # a stand-in device hub: its commands join this hub's table as wiring.py does for the devices feature
    hub.services.handlers = HandlerTable.join(hub.services.handlers, *wiring.DEVICES.handlers)
    tag = shop.packages("FLW-00")[0].tag
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as reg:
            await ready(reg, "R1", "ana", drawer=False)
            res = await reg.request("print_exit_label", tag=tag)
            assert res["printer"] == "lp"
    job = recv.receive_nowait()
    assert isinstance(job, PrintZpl)
    text = field_text(job.zpl)
    assert "GOVERNMENT WARNING" in text and tag in text and "Packaged" in text
