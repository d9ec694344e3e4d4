"""Pulls from the sandbox: reconciliation (under 429s) with an adjustment, and receiving a delivery."""

from __future__ import annotations

import trio

from hub.sale import inventory
from sandbox import demo as sbx
from tests.state.conftest import World, connect, ready, ws_url


async def test_reconciliation_finds_planted_discrepancy_and_adjustment_reaches_sandbox(world: World) -> None:
    w = world
    pkg = w.unit_packages("FLW-0", 1, min_qty=10)[0]
    state = await w.admin.state()
    row = next(p for p in state["packages"] if p["label"] == pkg.tag)
    # plant: the state thinks two more units are on the shelf
    await w.admin.upsert_packages(
        [
            {
                "label": pkg.tag,
                "item_name": row["item_name"],
                "category": row["category"],
                "unit": "Each",
                "quantity": pkg.quantity + 2,
            }
        ]
    )
    # and the state answers GETs slowly: 3 per second, then 429
    await w.admin.set_faults(get_rate_per_second=3, get_concurrency=1)
    with trio.fail_after(20):
        async with connect(ws_url(w.hub)) as c:
            token = await ready(c, "OFFICE", drawer=False)
            async with w.rest(token) as http:
                http.timeout = 20
                answer = await http.post("/api/state/reconciliations")
                assert answer.status_code == 200, answer.text
                rec = answer.json()
                faults = await w.admin.faults()
                assert faults["counters"]["rate_limited"] > 0  # 429s happened and nothing failed
                assert rec["compared"] >= 200
                found = {d["label"]: d for d in rec["discrepancies"]}
                assert found[pkg.tag]["kind"] == "quantity"
                assert (found[pkg.tag]["local"], found[pkg.tag]["state"]) == (pkg.quantity, pkg.quantity + 2)
                # the sandbox's own seeded packages are not in the store
                assert found["1A4FF0300000387000000101"]["kind"] == "missing_locally"
                assert [d for d in rec["discrepancies"] if d["kind"] == "quantity"] == [found[pkg.tag]]
                await w.admin.clear_faults()
                # a manager turns it into an adjustment with a state reason code
                bad = await http.post(
                    f"/api/state/reconciliations/{rec['id']}/adjust", json={"label": pkg.tag}
                )
                assert bad.status_code == 400
                adj = await http.post(
                    f"/api/state/reconciliations/{rec['id']}/adjust",
                    json={"label": pkg.tag, "reason": "Theft", "note": "two units unaccounted for at count"},
                )
                assert adj.status_code == 200, adj.text
                await w.wait_drained(10)
                kept = (await http.get("/api/state/reconciliations")).json()
                assert kept[0]["id"] == rec["id"]
                assert next(d for d in kept[0]["discrepancies"] if d["label"] == pkg.tag)["adjusted_by"] > 0
    state = await w.admin.state()
    [made] = [a for a in state["adjustments"] if a["label"] == pkg.tag]
    assert (made["quantity"], made["unit"], made["reason"]) == (-2.0, "Each", "Theft")
    assert next(p for p in state["packages"] if p["label"] == pkg.tag)["quantity"] == pkg.quantity
    assert [e.kind for e in w.outbox()] == ["adjustment"]


async def test_delivery_with_short_and_missing_package_is_received_with_right_report(world: World) -> None:
    w = world
    flower = w.unit_packages("FLW-001", 1)[0].product_id
    bulk = next(p.id for p in w.demo.products if p.sold_by == "weight" and p.category == "flower")
    a, b, c_ = (label for label, *_ in sbx.INCOMING_PACKAGES)
    with trio.fail_after(20):
        async with connect(ws_url(w.hub)) as c:
            token = await ready(c, "OFFICE", drawer=False)
            async with w.rest(token) as http:
                listed = (await http.get("/api/state/manifests")).json()
                [m] = [m for m in listed if m["manifest"] == sbx.INCOMING_MANIFEST_NUMBER]
                assert [ln["label"] for ln in m["lines"]] == [a, b, c_]
                # a: all 50 arrived; b: short (400 g of 453.592 g); c: not in the van
                answer = await http.post(
                    f"/api/state/manifests/{m['manifest']}/receive",
                    json={
                        "lines": [
                            {"label": a, "status": "received", "product_id": flower},
                            {
                                "label": b,
                                "status": "short",
                                "received_quantity": 400,
                                "reason": "bag weighed light",
                                "product_id": bulk,
                            },
                        ]
                    },
                )
                assert answer.status_code == 200, answer.text
                report = answer.json()
                lines = {ln["label"]: ln for ln in report["lines"]}
                assert (lines[a]["status"], lines[a]["received"]) == ("received", 50)
                assert (lines[b]["status"], lines[b]["received"], lines[b]["reason"]) == (
                    "short",
                    400,
                    "bag weighed light",
                )
                assert (lines[c_]["status"], lines[c_]["received"]) == ("missing", 0)
                assert report["discrepancies"] == 2
                assert any("Metrc" in step for step in report["state_steps"])
                again = await http.post(f"/api/state/manifests/{m['manifest']}/receive", json={"lines": []})
                assert again.status_code == 400
                # the person receives it in Metrc (the sandbox's UI stand-in); the hub sees that on its pull
                await w.admin.receive_delivery(
                    m["delivery_id"],
                    [{"label": a, "received_quantity": 50}, {"label": b, "received_quantity": 400}],
                )
                refreshed = (await http.get("/api/state/manifests")).json()
                mine = next(x for x in refreshed if x["manifest"] == m["manifest"])
                assert mine["state_received_at"] and mine["state_agrees"] is True
                printed = await http.get(f"/api/state/manifests/{m['manifest']}/report")
                assert (
                    "short" in printed.text
                    and "missing" in printed.text
                    and "Discrepancies: 2" in printed.text
                )
    got_a, got_b = inventory.package(w.hub.store, a), inventory.package(w.hub.store, b)
    assert got_a is not None and got_a.quantity == 50 and got_a.product_id == flower
    assert got_b is not None and got_b.quantity == 400_000  # milligrams
    assert inventory.package(w.hub.store, c_) is None
