"""The machine's own limits, measured with the bare libraries: LMDB get + msgspec decode, durable LMDB
commits of a sale-sized write set, and the cost of a trio thread hop."""

from __future__ import annotations

import os
import random
import tempfile
import time
from typing import Any

import lmdb
import msgspec
import trio

from bench.dataset import FACILITY
from bench.stats import summary
from hub.domain.catalog import Package

# What one sale writes in the hub's commit (hub/sale/commit.py commit_sale + the cart and stored reply):
# sale record, sales_by_day, 3 packages, ledger, outbox, drawer, audit entry, audit head, receipt seq,
# cart, stored reply. Sizes in bytes, as the hub encodes them.
SALE_WRITE_SET = (1500, 0, 210, 210, 210, 160, 520, 700, 420, 72, 8, 60, 200)


def lmdb_get_decode(n_keys: int, lookups: int) -> dict[str, Any]:
    """One read txn + get + msgspec decode of a Package, per lookup (what a hot read costs)."""
    enc = msgspec.msgpack.Encoder()
    dec = msgspec.msgpack.Decoder(Package)
    with tempfile.TemporaryDirectory(prefix="bench-lmdb-") as d:
        env = lmdb.open(d, map_size=1 << 30, max_dbs=4, max_spare_txns=4)
        db = env.open_db(b"packages")
        keys = [f"1A4{FACILITY}{i + 1:013d}".encode() for i in range(n_keys)]
        with env.begin(write=True) as txn:
            for i, k in enumerate(keys):
                pkg = Package(
                    tag=k.decode(),
                    product_id=f"PRE-{i % 7:03d}",
                    quantity=1000,
                    location="Vault A",
                    batch="BNCH-01",
                )
                txn.put(k, enc.encode(pkg), db=db)
        rng = random.Random(2)
        order = [rng.choice(keys) for _ in range(lookups)]
        samples = []
        pc = time.perf_counter
        for k in order:
            t0 = pc()
            with env.begin(buffers=True) as txn:
                raw = txn.get(k, db=db)
                dec.decode(raw)
            samples.append(pc() - t0)
        env.close()
    return {"keys": n_keys, **summary(samples)}


def durable_commits(batch: int, transactions: int) -> dict[str, Any]:
    """Durable (sync + metasync) write transactions, each holding ``batch`` sale-sized write sets."""
    with tempfile.TemporaryDirectory(prefix="bench-commit-", dir=os.environ.get("BENCH_DATA_DIR")) as d:
        env = lmdb.open(d, map_size=4 << 30, max_dbs=16, sync=True, metasync=True)
        dbs = [env.open_db(f"t{i}".encode()) for i in range(len(SALE_WRITE_SET))]
        rng = random.Random(3)
        blobs = [os.urandom(size) for size in SALE_WRITE_SET]
        seq = 0
        samples = []
        t_all = time.perf_counter()
        for _ in range(transactions):
            t0 = time.perf_counter()
            with env.begin(write=True) as txn:
                for _ in range(batch):
                    seq += 1
                    for j, (db, blob) in enumerate(zip(dbs, blobs, strict=True)):
                        # append-ordered tables (sales, audit) and scattered ones (packages, ledger)
                        key = seq.to_bytes(8, "big") if j in (0, 8) else rng.randbytes(12)
                        txn.put(key, blob, db=db)
            samples.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - t_all
        env.close()
    s = summary(samples)
    return {"batch": batch, "transactions": transactions, "sales_per_s": batch * transactions / elapsed, **s}


def thread_hop(n: int) -> dict[str, Any]:
    """``trio.to_thread.run_sync`` round trip: what the writer pays per batch on top of the commit."""

    async def main() -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            await trio.to_thread.run_sync(int)
            out.append(time.perf_counter() - t0)
        return out

    return summary(trio.run(main))
