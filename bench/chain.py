"""``python -m bench --chain [--quick]``: HQ's ingest measured against this machine's own limits, in one run.

1. Raw JetStream consume: a pull consumer fetches and acknowledges every message of the stream, nothing else.
2. Raw PostgreSQL insert: the same events inserted as rows (store, seq, body) in batches, one transaction each.
3. HQ ingest: HQ's own path (``Headquarters.ingest``: fetch, decode, one transaction per batch with the
   reports' tables, ack after commit) over the same stream with a fresh durable consumer and database.
   The ratio is HQ's rate over the slower of the two raw rates (target ≥ 0.5).
4. Lag at peak: 50 simulated stores publish at a busy store's peak (``PEAK_PER_STORE`` events a second each)
   while HQ ingests; the lag of an event is HQ's commit time minus the store's commit time.

It needs nats-server and PostgreSQL on this machine; without them it says so and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STORES = 50
APPLIERS = int(os.environ.get("BENCH_HQ_APPLIERS", "2"))
PEAK_PER_STORE = 2.0  # events/s: four registers each selling every 4 s, a check-in and a sale per customer
FULL = {"events_per_store": 400, "batch": 500, "peak_seconds": 20.0}
QUICK = {"events_per_store": 40, "batch": 500, "peak_seconds": 5.0}


def log(msg: str) -> None:
    print(f"[bench --chain] {msg}", flush=True)


def _event(store: str, seq: int, at: datetime) -> bytes:
    from hub.chain.events import ChainEvent, encode_json

    receipt = seq
    line = {
        "line_id": 1, "product_id": "PRE-001", "name": "Pre-roll 1 g", "category": "pre-roll",
        "sold_by": "each", "quantity": 1, "weight_mg": 0, "price_cents": 1200, "total_cents": 1500,
    }  # fmt: skip
    if seq % 2:  # every other event a check-in (small), the rest sales (a receipt)
        e = ChainEvent(store=store, seq=seq, at=at, action="check_in", business_date=at.date().isoformat(),
                       staff="ana", register="R1", detail={"allowed": True, "customer": f"c{seq}"})  # fmt: skip
    else:
        doc = {
            "receipt_number": receipt, "register_id": "R1", "sold_at": at.isoformat(),
            "sold_at_local": at.replace(tzinfo=None).isoformat(timespec="seconds"), "lines": [line],
            "subtotal_cents": 1200, "discount_cents": 0, "pretax_cents": 1200, "tax_cents": 300,
            "total_cents": 1500, "tendered_cents": 2000, "change_cents": 500,
        }  # fmt: skip
        e = ChainEvent(store=store, seq=seq, at=at, action="sale", business_date=at.date().isoformat(),
                       staff="ana", register="R1", detail={"receipt": receipt, "total_cents": 1500},
                       record={"receipt": doc, "customer_id": f"c{seq - 1}"})  # fmt: skip
    return encode_json(e)


async def _publish(js: Any, chain: str, stores: list[str], first: int, n: int) -> int:
    from hub.chain import names

    sent = 0
    for start in range(first, first + n, 50):
        now = datetime.now(UTC)
        futs = [
            js.publish(
                names.events_subject(chain, s),
                _event(s, seq, now),
                headers={"Nats-Msg-Id": names.msg_id(s, seq)},
            )
            for s in stores
            for seq in range(start, min(start + 50, first + n))
        ]
        await asyncio.gather(*futs)
        sent += len(futs)
    return sent


async def _raw_js(js: Any, chain: str, total: int, batch: int) -> float:
    from nats.js.api import AckPolicy, ConsumerConfig

    from hub.chain import names

    sub = await js.pull_subscribe(
        f"chain.{chain}.>", durable="raw", stream=names.stream_name(chain),
        config=ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=batch * 4),
    )  # fmt: skip
    got = 0
    t0 = time.perf_counter()
    while got < total:
        msgs = await sub.fetch(batch, timeout=5)
        for m in msgs:
            await m.ack()
        got += len(msgs)
    return got / (time.perf_counter() - t0)


async def _raw_pg(dsn: str, bodies: list[tuple[str, int, bytes]], batch: int) -> float:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE raw_events (store_id text, seq bigint, body jsonb, PRIMARY KEY (store_id, seq))"
        )
        t0 = time.perf_counter()
        for i in range(0, len(bodies), batch):
            async with conn.transaction():
                await conn.cursor().executemany(
                    "INSERT INTO raw_events VALUES (%s, %s, %s::jsonb)",
                    [(s, q, b.decode()) for s, q, b in bodies[i : i + batch]],
                )
        return len(bodies) / (time.perf_counter() - t0)


def _hq(chain: str, stores: list[str], nats: Any, dsn: str, batch: int, durable: str) -> Any:
    from hub.hq.config import HqConfig, HqSection, IngestSection, NatsSection, PostgresSection, StoreEntry
    from hub.hq.service import Headquarters

    cfg = HqConfig(
        hq=HqSection(chain=chain),
        nats=NatsSection(url=nats.url, user="hq", password=nats.hq_password),
        postgres=PostgresSection(dsn=dsn),
        ingest=IngestSection(durable=durable, batch=batch, appliers=APPLIERS),
        stores=[StoreEntry(id=s) for s in stores],
    )
    return Headquarters(cfg)


async def _prepare_db(admin_dsn: str, name: str) -> str:
    import psycopg

    from hub.hq.migrate import migrate

    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    dsn = admin_dsn.replace("dbname=postgres", f"dbname={name}")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await migrate(conn)
    return dsn


async def _hq_ingest_until(hq: Any, total: int, timeout: float) -> float:
    await hq._connect_nats()
    t0 = time.perf_counter()
    task = asyncio.create_task(hq.ingest())
    try:
        deadline = time.monotonic() + timeout
        while hq.ingested_total < total:
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise TimeoutError(f"HQ ingested {hq.ingested_total} of {total} in {timeout} s")
            await asyncio.sleep(0.01)
        return hq.ingested_total / (time.perf_counter() - t0)
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        await hq.nc.close()


async def _scenario(p: dict[str, Any], nats: Any, pg: Any) -> dict[str, Any]:
    import nats as nats_py
    from nats.js.api import StreamConfig

    from hub.chain import names

    chain = "bench"
    stores = [f"s{i:02d}" for i in range(STORES)]
    n = p["events_per_store"]
    total = STORES * n
    nc = await nats_py.connect(nats.url, user="hq", password=nats.hq_password)
    js = nc.jetstream(timeout=30)
    await js.add_stream(StreamConfig(name=names.stream_name(chain), subjects=names.stream_subjects(chain)))
    log(f"loading {total} events of {STORES} stores into the stream")
    await _publish(js, chain, stores, 1, n)
    log("raw JetStream consume")
    js_rate = await _raw_js(js, chain, total, p["batch"])
    log(f"  {js_rate:,.0f} msgs/s")
    bodies = [(s, seq, _event(s, seq, datetime.now(UTC))) for s in stores for seq in range(1, n + 1)]
    raw_dsn = await _prepare_db(pg.dsn, "raw_bench")
    log("raw PostgreSQL insert")
    pg_rate = await _raw_pg(raw_dsn, bodies, p["batch"])
    log(f"  {pg_rate:,.0f} rows/s")
    hq_dsn = await _prepare_db(pg.dsn, "hq_bench")
    log("HQ ingest")
    hq_rate = await _hq_ingest_until(_hq(chain, stores, nats, hq_dsn, p["batch"], "hq"), total, 600)
    log(f"  {hq_rate:,.0f} events/s")

    # lag at 50 stores' peak rate: HQ (a fresh consumer, caught up first) ingests while the stores publish
    lag_dsn = await _prepare_db(pg.dsn, "hq_lag")
    hq = _hq(chain, stores, nats, lag_dsn, p["batch"], "lag")
    await _hq_ingest_until(hq, total, 600)  # the backlog first, so only live events are timed
    hq = _hq(chain, stores, nats, lag_dsn, p["batch"], "lag")
    await hq._connect_nats()
    task = asyncio.create_task(hq.ingest())
    rate = STORES * PEAK_PER_STORE
    seconds = p["peak_seconds"]
    seq = n + 1
    t_start = time.monotonic()
    log(f"peak: {STORES} stores x {PEAK_PER_STORE} events/s for {seconds:g} s while HQ ingests")
    while time.monotonic() - t_start < seconds:
        tick = time.monotonic()
        now = datetime.now(UTC)
        await asyncio.gather(*(
            js.publish(names.events_subject(chain, s), _event(s, seq, now), headers={"Nats-Msg-Id": names.msg_id(s, seq)})
            for s in stores
        ))  # fmt: skip
        seq += 1
        await asyncio.sleep(max(0.0, STORES / rate - (time.monotonic() - tick)))
    live = (seq - n - 1) * STORES
    deadline = time.monotonic() + 60
    while hq.ingested_total < live and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    await hq.nc.close()
    import psycopg

    async with await psycopg.AsyncConnection.connect(lag_dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - at)),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - at)),"
            " max(extract(epoch FROM ingested_at - at)), count(*) FROM events WHERE seq > %s",
            (n,),
        )
        p50, p99, worst, counted = await cur.fetchone()
    await nc.close()
    return {
        "stores": STORES,
        "events": total,
        "raw_jetstream_consume_per_s": js_rate,
        "raw_postgres_insert_per_s": pg_rate,
        "hq_ingest_per_s": hq_rate,
        "ratio_vs_jetstream": hq_rate / js_rate,
        "ratio_vs_postgres": hq_rate / pg_rate,
        "ratio_vs_slower_raw": hq_rate / min(js_rate, pg_rate),
        "peak_events_per_s": rate,
        "peak_seconds": seconds,
        "peak_events": live,
        "peak_events_ingested": int(counted),
        "lag_p50_s": float(p50 or 0),
        "lag_p99_s": float(p99 or 0),
        "lag_max_s": float(worst or 0),
    }


def run_chain(quick: bool, out: Path) -> int:
    from hub.hq.localservers import NatsServer, Postgres, what_is_missing

    missing = what_is_missing()
    if missing:
        log(
            f"skipped: missing {', '.join(missing)} (pip install 'storehub[chain]'; apt-get install postgresql)"
        )
        return 0
    p = QUICK if quick else FULL
    work = Path(tempfile.mkdtemp(prefix="storehub-bench-chain-", dir=os.environ.get("BENCH_DATA_DIR")))
    nats = NatsServer(work / "nats", "bench", [f"s{i:02d}" for i in range(STORES)]).start()
    pg = Postgres(fsync=True).start()
    started = time.perf_counter()
    try:
        figures = asyncio.run(_scenario(p, nats, pg))
    finally:
        nats.stop()
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "chain": figures,
        "target": {"ratio_vs_slower_raw": 0.5},
        "pass": figures["ratio_vs_slower_raw"] >= 0.5,
        "elapsed_s": time.perf_counter() - started,
    }
    f = figures
    print(
        "\n".join(
            [
                "",
                f"  HQ ingest, {STORES} stores, {f['events']} events",
                f"  raw JetStream consume   {f['raw_jetstream_consume_per_s']:>10,.0f} /s",
                f"  raw PostgreSQL insert   {f['raw_postgres_insert_per_s']:>10,.0f} /s",
                f"  HQ ingest               {f['hq_ingest_per_s']:>10,.0f} /s",
                f"  ratio vs slower raw     {f['ratio_vs_slower_raw']:>10.2f}   target >= 0.5 "
                f"{'pass' if result['pass'] else 'MISS'}",
                f"  lag at peak ({f['peak_events_per_s']:.0f} events/s): p50 {f['lag_p50_s'] * 1000:.0f} ms, "
                f"p99 {f['lag_p99_s'] * 1000:.0f} ms, max {f['lag_max_s'] * 1000:.0f} ms "
                f"({f['peak_events_ingested']} of {f['peak_events']} events)",
            ]
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    log(f"wrote {out} ({result['elapsed_s']:.0f} s)")
    return 0
