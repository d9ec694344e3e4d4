"""HQ → stores: a price set at HQ reaches a running store and applies to the next scan; a store that was
offline gets it when it returns; a store keeps its last version when HQ is away; roles gate the change."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import trio

from hub.domain.catalog import Package
from tests.chain.conftest import VIEWER_PW, StoreHub, hq_toml, make_nats, start_hq, start_store, store_hub
from tests.chain.helpers import adult_scan, register, tags, wait_for
from tests.support.hubproc import read_table

STORES = ["north", "south"]
LAST_LINE: dict[str, Any] = {}  # the cart line of the last scanned_price


async def scanned_price(s: StoreHub, tag: str) -> tuple[int, int]:
    """Scan a customer and one package at R1; returns (unit price on the line, catalogue version shown)."""
    with trio.fail_after(30):
        async with register(s.ws, s.data, drawer=False) as c:
            await c.request("scan", data=adult_scan())
            await c.request("add_package", tag=tag)
            snap = await c.wait_snapshot(lambda st: st.get("cart") and st["cart"]["lines"])
            state: dict[str, Any] = snap["state"]
            await c.request("end_customer")  # nothing sold: the next scan starts a fresh cart
            LAST_LINE.clear()
            LAST_LINE.update(state["cart"]["lines"][-1])
            return state["cart"]["lines"][-1]["unit_price_cents"], state["chain"]["catalogue_version"]


async def store_version(s: StoreHub) -> int:
    from hub.chain.events import catalogue_version
    from hub.store.env import Store

    st = Store(s.data, readonly=True, map_size=256 << 20)
    try:
        return catalogue_version(st)
    finally:
        st.close()


async def test_price_set_at_hq_applies_to_next_scan_and_reaches_an_offline_store(
    tmp_path: Path, pg_dsn: str
) -> None:
    nats = make_nats(tmp_path, STORES)
    north, south = (store_hub(tmp_path, s, nats) for s in STORES)
    hq = None
    try:
        hq = await start_hq(hq_toml(tmp_path, nats, pg_dsn, STORES))
        await start_store(north)
        await start_store(south)
        tag_n = tags(north.data, 1)[0]
        product = next(p.product_id for p in read_table(north.data, "packages", Package) if p.tag == tag_n)
        before, version = await scanned_price(north, tag_n)
        assert version == 0
        assert south.proc is not None
        await south.proc.stop()  # south is closed (offline) while HQ changes the price

        async with hq.client("look", VIEWER_PW) as viewer:
            r = await viewer.put(
                "/api/catalogue/prices", json={"scope": "*", "prices": {product: before + 111}}
            )
            assert r.status_code == 403  # a viewer may read, not set prices
        async with hq.client() as http:
            r = await http.put(
                "/api/catalogue/prices", json={"scope": "*", "prices": {product: before + 111}}
            )
            assert r.status_code == 200, r.text
            assert r.json()["version"] == 1
            bad = await http.put("/api/catalogue/prices", json={"scope": "nowhere", "prices": {product: 1}})
            assert bad.status_code == 400

        async def north_has(v: int) -> bool:
            return await store_version(north) >= v

        await wait_for(lambda: north_has(1), 20, "north to apply version 1")
        price, shown = await scanned_price(north, tag_n)  # the next scan, no restart
        assert (price, shown) == (before + 111, 1)
        async with register(north.ws, north.data, drawer=False) as c:  # the manager sees what the store runs
            async with httpx.AsyncClient(timeout=5) as http:
                status = (
                    await http.get(
                        f"http://127.0.0.1:{north.http}/api/chain/status",
                        headers={"authorization": f"Bearer {c.session_token}"},
                    )
                ).json()
        assert (
            status["catalogue_version"] == 1 and status["connected"] is True and status["store_id"] == "north"
        )

        await start_store(south)  # back online: it fetches what it missed
        await wait_for(lambda: store_version_is(south, 1), 20, "south to apply version 1")
        tag_s = next(p.tag for p in read_table(south.data, "packages", Package) if p.product_id == product)
        assert (await scanned_price(south, tag_s)) == (before + 111, 1)

        # a store's own price wins over the chain's; the other store keeps the chain's
        async with hq.client() as http:
            r = await http.put(
                "/api/catalogue/prices", json={"scope": "north", "prices": {product: before + 222}}
            )
            assert r.json()["version"] == 2
        await wait_for(lambda: north_has(2), 20, "north to apply version 2")
        assert (await scanned_price(north, tag_n))[0] == before + 222

        # promotions from HQ replace the store's own, without a restart: 10 % off pre-rolls at north
        promo = {"kind": "category_percent", "id": "hq-pre-roll-10", "name": "Pre-rolls 10% off",
                 "category": "pre-roll", "percent_bp": 1000}  # fmt: skip
        async with hq.client() as http:
            r = await http.put("/api/catalogue/promotions", json={"scope": "north", "promotions": [promo]})
            assert r.json()["version"] == 3, r.text
        await wait_for(lambda: north_has(3), 20, "north to apply version 3")
        assert LAST_LINE["discount_cents"] == 0
        assert (await scanned_price(north, tag_n)) == (before + 222, 3)
        assert LAST_LINE["discount_cents"] == (before + 222) // 10

        # HQ away: the store sells on the version it runs; HQ sees which version each store runs
        await hq.proc.stop(signal.SIGKILL)
        assert (await scanned_price(north, tag_n)) == (before + 222, 3)
        assert north.proc is not None
        await north.proc.stop()  # and restarted while HQ is still away: the version stays in force
        await start_store(north)
        assert (await scanned_price(north, tag_n)) == (before + 222, 3)
        assert LAST_LINE["discount_cents"] == (before + 222) // 10
        hq = await start_hq(hq_toml(tmp_path, nats, pg_dsn, STORES))
        async with hq.client() as http:

            async def versions() -> dict[str, int] | None:
                rows = {r["store_id"]: r["catalogue_version"] for r in (await http.get("/api/stores")).json()}
                return rows if rows.get("north") == 3 and rows.get("south") == 3 else None

            await wait_for(versions, 30, "HQ to see the versions the stores run")
    finally:
        for s in (north, south):
            if s.proc is not None:
                await s.proc.stop(signal.SIGKILL)
        if hq is not None:
            await hq.proc.stop(signal.SIGKILL)
        nats.stop()


async def store_version_is(s: StoreHub, v: int) -> bool:
    return await store_version(s) >= v
