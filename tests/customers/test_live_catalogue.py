"""The live catalogue from the back office over a real hub: a promotion created there applies to the next
scan without a restart; a promo code applies only once given; a price change takes effect at its time;
product edits reach the search; the preview says what a cart would get; every change is audited with who
and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from hub.client import ClientError, HubClient, connect
from tests.conftest import ws_url
from tests.customers.conftest import Shop, ready


def line_of(snap: dict[str, Any], product: str) -> dict[str, Any]:
    return next(ln for ln in snap["state"]["cart"]["lines"] if ln["product"].startswith(product))


async def add(reg: HubClient, product_id: str, name: str) -> dict[str, Any]:
    await reg.request("add_product", product_id=product_id, quantity=1)
    snap = await reg.wait_snapshot(
        lambda s: s.get("cart") and any(ln["product"].startswith(name) for ln in s["cart"]["lines"])
    )
    return line_of(snap, name)


async def test_promotions_codes_prices_and_audit(shop: Shop) -> None:
    hub = shop.hub
    adult = next(c for c in hub.services.demo.store.customers if c.role == "adult")
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as reg, connect(ws_url(hub)) as office:
            await ready(reg, "R1", "ana", drawer=False)
            mtoken = await ready(office, "OFFICE", "maria", drawer=False)
            await reg.request("scan", data=adult.id_scan)
            first = await add(reg, "EDI-001", "Watermelon Gummies")
            assert first["discount_cents"] == 0
            async with shop.rest(mtoken) as http:
                # a promotion created in the back office ...
                r = await http.post(
                    "/api/catalogue/promotions",
                    json={
                        "promotion": {
                            "kind": "category_percent",
                            "id": "edibles-20",
                            "name": "Edibles 20% off",
                            "category": "edible",
                            "percent_bp": 2000,
                        },
                        "reason": "spring sale",
                    },
                )
                assert r.status_code == 200, r.text
                # ... applies to the next scan, no restart
                nxt = await add(reg, "EDI-002", "Sour Cherry Gummies")
                assert nxt["unit_price_cents"] == 2000 and nxt["discount_cents"] == 400
                # a bad promotion is refused with what is wrong
                bad = await http.post(
                    "/api/catalogue/promotions",
                    json={
                        "promotion": {
                            "kind": "bundle",
                            "id": "b",
                            "name": "free",
                            "quantity": 1,
                            "price_cents": 0,
                        },
                        "reason": "test",
                    },
                )
                assert bad.status_code == 400 and "bundle is at least 2" in bad.json()["message"]
                # a promo code: nothing until the customer gives it
                await http.post(
                    "/api/catalogue/promotions",
                    json={
                        "promotion": {
                            "kind": "amount_off",
                            "id": "welcome5",
                            "name": "Welcome $5",
                            "amount_cents": 500,
                            "categories": ["beverage"],
                            "code": "WELCOME5",
                        },
                        "reason": "online deal",
                    },
                )
                bev = await add(reg, "BEV-003", "Cold Brew")
                assert bev["discount_cents"] == 0
                try:
                    await reg.request("apply_promo_code", code="NOPE")
                    raise AssertionError("an unknown code was accepted")
                except ClientError as exc:
                    assert exc.code == "unknown_promo_code"
                await reg.request("apply_promo_code", code="welcome5")
                snap = await reg.wait_snapshot(
                    lambda s: line_of({"state": s}, "Cold Brew")["discount_cents"] == 500
                )
                assert line_of(snap, "Cold Brew")["discount_cents"] == 500
                # the preview answers what a cart would get, with a draft in place of the live one
                pv = (
                    await http.post(
                        "/api/catalogue/promotions/preview",
                        json={
                            "lines": [{"product_id": "EDI-001", "quantity": 2}, {"product_id": "BEV-003"}],
                            "promotion": {
                                "kind": "category_percent",
                                "id": "edibles-20",
                                "name": "Edibles 30% off",
                                "category": "edible",
                                "percent_bp": 3000,
                            },
                            "codes": ["WELCOME5"],
                        },
                    )
                ).json()
                assert (
                    pv["lines"][0]["promotion"] == "Edibles 30% off"
                    and pv["lines"][0]["promotion_cents"] == 1200
                )
                assert pv["lines"][1]["promotion_cents"] == 500
                # a price change at its time: not before, then the next scan has it
                at = datetime.now(UTC) + timedelta(seconds=1.5)
                r = await http.post(
                    "/api/catalogue/price-changes",
                    json={
                        "product_id": "TOP-003",
                        "price_cents": 999,
                        "effective_at": at.isoformat(),
                        "reason": "supplier price",
                    },
                )
                assert r.status_code == 200, r.text
                before = await add(reg, "TOP-003", "Transdermal Patch")
                assert before["unit_price_cents"] == 1200
                while (await http.get("/api/catalogue/products/TOP-003")).json()["product"][
                    "price_cents"
                ] != 999:
                    await trio.sleep(0.1)
                assert datetime.now(UTC) >= at
                await reg.request("end_customer")
                await reg.wait_snapshot(lambda s: s.get("cart") is None)
                await reg.request("scan", data=adult.id_scan)
                await reg.request("add_product", product_id="TOP-003", quantity=1)
                # (older snapshots may still be queued: wait for the one with the new price)
                snap = await reg.wait_snapshot(
                    lambda s: (
                        s.get("cart") and any(ln["unit_price_cents"] == 999 for ln in s["cart"]["lines"])
                    )
                )
                assert [ln["unit_price_cents"] for ln in snap["state"]["cart"]["lines"]] == [999]
                # a product edit: name, shelf, image; the search finds the new name
                r = await http.post(
                    "/api/catalogue/products/TOP-003",
                    json={
                        "changes": {
                            "name": "Transdermal Patch 20mg (new pack)",
                            "shelf_location": "B2",
                            "image_url": "https://img.example/patch.png",
                        },
                        "reason": "new packaging",
                    },
                )
                assert r.status_code == 200, r.text
                found = await reg.request("search", query="new pack")
                assert any(p["id"] == "TOP-003" for p in found["products"])
                # without a reason nothing changes
                r = await http.post("/api/catalogue/products/TOP-003", json={"changes": {"price_cents": 1}})
                assert r.status_code == 400 and "reason" in r.json()["message"]
                deleted = await http.post(
                    "/api/catalogue/promotions/edibles-20/delete", json={"reason": "sale over"}
                )
                assert deleted.status_code == 200
                gone = await add(reg, "EDI-001", "Watermelon Gummies")
                assert gone["discount_cents"] == 0
    created = shop.audit("promotion_created")
    assert [(a["promotion"], a["staff"], a["reason"]) for a in created] == [
        ("edibles-20", "maria", "spring sale"),
        ("welcome5", "maria", "online deal"),
    ]
    assert shop.audit("promotion_deleted")[0]["reason"] == "sale over"
    assert shop.audit("price_change_scheduled")[0]["reason"] == "supplier price"
    changed = shop.audit("price_changed")
    assert changed[0]["changes"] == {"price_cents": [1200, 999]} and changed[0]["staff"] == "maria"
    edit = shop.audit("product_changed")[0]
    assert edit["staff"] == "maria" and edit["reason"] == "new packaging"
    assert edit["changes"]["shelf_location"] == ["", "B2"]


async def test_a_group_promotion_applies_only_to_its_group(shop: Shop) -> None:
    from tests.customers.conftest import licence

    hub = shop.hub
    vet, other = licence("C8880000001", given="LEE"), licence("C8880000002", given="PAT")
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as reg, connect(ws_url(hub)) as office:
            token = await ready(reg, "R1", "ana", drawer=False)
            mtoken = await ready(office, "OFFICE", "maria", drawer=False)
            async with shop.rest(token) as http:
                await http.post(
                    "/api/customers/enrol",
                    json={"licence": vet, "consent_profile": True, "groups": ["veteran"]},
                )
                await http.post("/api/customers/enrol", json={"licence": other, "consent_profile": True})
            async with shop.rest(mtoken) as http:
                r = await http.post(
                    "/api/catalogue/promotions",
                    json={
                        "promotion": {
                            "kind": "category_percent",
                            "id": "vets-10",
                            "name": "Veterans 10%",
                            "category": "concentrate",
                            "percent_bp": 1000,
                            "customer_groups": ["veteran"],
                        },
                        "reason": "veterans day",
                    },
                )
                assert r.status_code == 200, r.text
            await reg.request("scan", data=vet)
            ln = await add(reg, "CON-002", "Sour Diesel Shatter")
            assert ln["discount_cents"] == 300
            await reg.request("end_customer")
            await reg.wait_snapshot(lambda s: s.get("cart") is None)
            await reg.request("scan", data=other)
            await reg.request("add_product", product_id="CON-002", quantity=1)
            snap = await reg.wait_snapshot(
                lambda s: (
                    s.get("cart") and s["cart"]["lines"] and s["cart"]["lines"][0]["discount_cents"] == 0
                )
            )
            assert len(snap["state"]["cart"]["lines"]) == 1
