"""Three store hubs selling into one HQ over real nats-server and PostgreSQL, through every failure the issue
names: NATS stopped and restarted, HQ SIGKILLed in the middle of a batch, a store hub SIGKILLed. Afterwards
HQ's figures per store equal each store's own Z report exactly, and every event is there once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psycopg
import trio

from tests.chain.conftest import StoreHub, hq_toml, make_nats, start_hq, start_store, store_hub
from tests.chain.helpers import adult_scan, audit_count, register, sell, store_z, tags, today, wait_for

STORES = ["north", "south", "east"]


async def sell_n(s: StoreHub, n: int) -> list[float]:
    """``n`` sales at register R1 of ``s``; returns how long each took (selling never waits on the chain)."""
    took = []
    with trio.fail_after(60):
        async with register(s.ws, s.data) as c:
            t = tags(s.data)
            for i in range(n):
                t0 = time.monotonic()
                await sell(c, adult_scan(), t[i % len(t)])
                took.append(time.monotonic() - t0)
    return took


async def all_sell(stores: list[StoreHub], n: int) -> list[float]:
    took: list[float] = []

    async def one(s: StoreHub) -> None:
        took.extend(await sell_n(s, n))

    async with trio.open_nursery() as nursery:
        for s in stores:
            nursery.start_soon(one, s)
    return took


async def metric(s: StoreHub, name: str) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"http://127.0.0.1:{s.http}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the hub's /metrics")


async def test_three_stores_through_nats_restart_hq_kill_and_store_kill(tmp_path: Path, pg_dsn: str) -> None:
    nats = make_nats(tmp_path, STORES)
    hq = None
    stores = [store_hub(tmp_path, s, nats) for s in STORES]
    try:
        hq = await start_hq(hq_toml(tmp_path, nats, pg_dsn, STORES, ack_wait=2.0, batch=20))
        async with trio.open_nursery() as nursery:
            for s in stores:
                nursery.start_soon(start_store, s)
        await all_sell(stores, 3)

        # 1. NATS goes away (the WAN is down): the stores keep selling, at full speed, and a backlog builds
        nats.stop()
        took = await all_sell(stores, 3)
        # a sale that waited on the chain would wait until NATS is back (it is still down here)
        assert max(took) < 10, f"a sale waited on the chain: {max(took):.1f} s"
        backlog = await metric(stores[0], "storehub_chain_backlog")
        assert backlog >= 3
        assert await metric(stores[0], "storehub_chain_link_up") == 0
        await trio.sleep(1.0)

        # 2. HQ is SIGKILLed in the middle of a batch: PostgreSQL holds the batch's transaction on a lock
        # (taken before NATS is back, so the outage's sales cannot reach HQ before it)
        with psycopg.connect(pg_dsn) as blocker:
            blocker.execute("LOCK TABLE sales IN ACCESS EXCLUSIVE MODE")
            nats.start()

            async def hq_waiting() -> bool:
                # any HQ statement waiting on that lock is inside a batch's transaction (events inserted,
                # nothing committed or acknowledged)
                with psycopg.connect(pg_dsn, autocommit=True) as probe:
                    row = probe.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    ).fetchone()
                return bool(row and row[0])

            await wait_for(hq_waiting, 30, "HQ to be inside a batch")
            await hq.proc.stop(signal.SIGKILL)
            blocker.rollback()
        await all_sell(stores, 2)  # HQ is down: the stream keeps what the stores send

        # 3. a store hub is SIGKILLed and started again on its data; it sells on
        east = stores[2]
        assert east.proc is not None
        await east.proc.stop(signal.SIGKILL)
        await start_store(east)
        await sell_n(east, 2)

        hq = await start_hq(hq_toml(tmp_path, nats, pg_dsn, STORES, ack_wait=2.0, batch=20))
        async with hq.client() as http:

            async def caught_up() -> list[dict[str, object]] | None:
                rows = (await http.get("/api/stores")).json()
                by = {r["store_id"]: r for r in rows}
                ok = all(by.get(s.store_id, {}).get("events") == audit_count(s.data) for s in stores)
                return rows if ok else None

            rows = await wait_for(caught_up, 60, "HQ to have every event of every store")
            z = {
                r["store_id"]: r
                for r in (await http.get("/api/z", params={"date": today().isoformat()})).json()
            }
            sales = (await http.get("/api/sales")).json()
        for r in rows:
            assert r["missing"] == 0 and r["max_seq"] == r["events"], r  # no event missing

        async def every_event_once() -> bool:
            # read side by side while the hubs run (a hub may log an event or two on its way down):
            # (store, seq) is the key, so count == the store's own count == the highest number means none
            # doubled and none missing
            with psycopg.connect(pg_dsn) as conn:
                held = {
                    r[0]: (r[1], r[2])
                    for r in conn.execute(
                        "SELECT store_id, count(*), max(seq) FROM events GROUP BY 1"
                    ).fetchall()
                }
            return all(held.get(s.store_id) == (audit_count(s.data),) * 2 for s in stores)

        await wait_for(every_event_once, 30, "HQ's events to equal each store's log")
        with psycopg.connect(pg_dsn) as conn:
            counted = dict(
                conn.execute(
                    "SELECT store_id, count(DISTINCT receipt_number) FROM sales GROUP BY 1"
                ).fetchall()
            )
        for s in stores:
            assert s.proc is not None
            await s.proc.stop()
        for s in stores:
            mine = store_z(s.data)
            expected_sales = 3 + 3 + 2 + (2 if s is east else 0)
            assert mine["sales_count"] == expected_sales == counted[s.store_id]
            theirs = {k: z[s.store_id][k] for k in mine}
            assert theirs == mine, f"{s.store_id}: HQ {theirs} != store Z {mine}"
        assert sum(r["sales"] for r in sales) == sum(3 + 3 + 2 + (2 if s is east else 0) for s in stores)
    finally:
        for s in stores:
            if s.proc is not None:
                await s.proc.stop(signal.SIGKILL)
        if hq is not None:
            await hq.proc.stop(signal.SIGKILL)
        nats.stop()
