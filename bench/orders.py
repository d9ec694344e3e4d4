"""Online orders under load, as ratios of this machine's own limits (part of ``python -m bench``).

The hub runs as a store runs it (``python -m hub.cli run``) on a store with a large menu (5k products,
4 packages each) and 200 open, accepted orders. Measured over real HTTP:

- intake p50: a signed ``POST /api/v1/orders`` (HMAC check, validation, one durable commit with the audit
  entry and the callback), against the floor of one durable commit (raw LMDB) plus one HTTP round trip to
  the same hub (``/healthz``);
- menu p50 after a change (rebuilt) against a raw scan-and-decode of the same LMDB tables in this process,
  and unchanged (answered from the cache) against the HTTP round trip;
- the register's scan round trip with one register selling while orders flow in, against the same without.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import dataset
from bench.hubproc import HubProcess, run_loadgen
from hub.domain import orders as core
from hub.domain import signing
from hub.domain.catalog import Package, Product
from hub.domain.items import LimitAttributes
from hub.orders import store as ostore
from hub.sale.inventory import put_package, put_product
from hub.store.env import Store, decode

CHANNEL, SECRET = "bench-web", "bench-channel-secret-0123456789"
TARGETS = {
    "order_intake_vs_commit_http": ("<=", 3.0),
    "menu_rebuild_vs_scan": ("<=", 3.0),
    "menu_cached_vs_http": ("<=", 2.0),
    "scan_with_orders_vs_without": ("<=", 1.25),
}


def bench_products(n: int) -> list[Product]:
    cats = ("flower", "pre-roll", "edible", "vape", "concentrate")
    out = []
    for i in range(n):
        cat = cats[i % len(cats)]
        out.append(
            Product(
                id=f"OB-{i:05d}",
                name=f"Bench {cat} {i}",
                brand=f"Brand {i % 40}",
                category=cat,
                sold_by="each",
                price_cents=1000 + (i % 50) * 100,
                limits=LimitAttributes(category=cat, net_weight_mg=1000, thc_mg=100),
                strain=f"Strain {i % 120}",
                strain_type=("indica", "sativa", "hybrid")[i % 3],
                thc_bp=1500 + (i % 20) * 50,
            )
        )
    return out


def prepare_orders(data: Path, products: int, per_product: int, open_orders: int, map_mb: int) -> list[str]:
    today = datetime.now(UTC).date()
    now = datetime.now(UTC)
    catalogue = bench_products(products)
    store = Store(data, map_size=map_mb << 20)
    try:
        with store.env.begin(write=True) as txn:
            for p in catalogue:
                put_product(txn, store, p)
                for k in range(per_product):
                    put_package(
                        txn,
                        store,
                        Package(
                            tag=f"1A4OB{int(p.id[3:]):08d}{k:011d}",
                            product_id=p.id,
                            quantity=1_000_000,
                            expires_on=today + timedelta(days=365),
                            location=f"Shelf {k}",
                        ),
                    )
            by_id = {p.id: p for p in catalogue}
            for i in range(open_orders):
                intake = core.OrderIntake(
                    external_id=f"seed-{i}",
                    customer=core.IntakeCustomer(name="Bench Buyer", birth_date=datetime(1990, 1, 1).date()),
                    lines=[
                        core.IntakeLine(product_id=catalogue[(i * 7 + j) % products].id, quantity=2)
                        for j in range(3)
                    ],
                    promised_at=now + timedelta(hours=2),
                )
                o = core.new_order(ostore.next_order_id(txn, store), CHANNEL, f"seed{i}", intake, by_id, now)
                ostore.save_order(txn, store, None, o, by="bench", now=now)
                accepted = core.accept(o, {ln.product_id: 10**9 for ln in o.lines}, now, "bench")
                assert not isinstance(accepted, core.Refusal)
                ostore.save_order(txn, store, o, accepted, by="bench", now=now)
    finally:
        store.close()
    return [p.id for p in catalogue]


def raw_menu_scan(data: Path, rounds: int) -> float:
    """p50 of scanning and decoding the tables the menu reads: the floor of any menu built from them."""
    store = Store(data, readonly=True)
    try:
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            with store.env.begin(buffers=True) as txn:
                for _, v in txn.cursor(db=store.db("products")):
                    decode(v, Product)
                for _, v in txn.cursor(db=store.db("packages")):
                    decode(v, Package)
                for _, v in txn.cursor(db=store.db("order_reservations")):
                    decode(v, core.ProductReservations)
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples)
    finally:
        store.close()


def _signed(body: bytes) -> dict[str, str]:
    return signing.signed_headers(CHANNEL, SECRET, int(time.time()), body)


class OrderFeed:
    """Posts signed orders one after another (a busy web menu) until stopped; keeps each latency."""

    def __init__(self, base: str, product_ids: list[str]) -> None:
        self.base = base
        self.products = product_ids
        self.latencies: list[float] = []
        self.errors = 0
        self.n = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def post_one(self, client: httpx.Client) -> float:
        self.n += 1
        i = self.n
        body = json.dumps(
            {
                "external_id": f"bench-{i}-{time.monotonic_ns()}",
                "customer": {"name": "Bench Buyer", "birth_date": "1990-01-01", "email": "b@example.com"},
                "lines": [
                    {"product_id": self.products[(i * 13 + j) % len(self.products)], "quantity": 1}
                    for j in range(2)
                ],
                "promised_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
            }
        ).encode()
        t0 = time.perf_counter()
        r = client.post(f"{self.base}/api/v1/orders", content=body, headers=_signed(body))
        dt = time.perf_counter() - t0
        if r.status_code != 201:
            self.errors += 1
        return dt

    def start(self, pause: float) -> None:
        def loop() -> None:
            with httpx.Client(timeout=10) as client:
                while not self._stop.is_set():
                    self.latencies.append(self.post_one(client))
                    self._stop.wait(pause)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def _p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def run_orders(spec: dict[str, Any], p: dict[str, Any], work: Path, log: Any) -> dict[str, Any]:
    (work / "orders").mkdir(parents=True, exist_ok=True)
    data = work / "orders" / "data"
    config = dataset.write_config(work / "orders" / "store.toml", data, 2, map_mb=p["map_mb"])
    with config.open("a", encoding="utf-8") as f:
        f.write(
            f'\n[[channels]]\nid = "{CHANNEL}"\nsecret = "{SECRET}"\n\n[notices]\nemail = "none"\nsms = "none"\n'
        )
    log(
        f"orders: preparing {spec['products']} products x {spec['packages_per_product']} packages, {spec['open_orders']} open orders"
    )
    plan = dataset.prepare(data, packages=500, customers=200, history=0, registers=2, map_mb=p["map_mb"])
    product_ids = prepare_orders(
        data, spec["products"], spec["packages_per_product"], spec["open_orders"], p["map_mb"]
    )
    scan_floor = raw_menu_scan(data, 5)
    hub = HubProcess(config, work / "orders" / "hub.log").start()
    base = hub.metrics_url.rsplit("/metrics", 1)[0]
    try:
        with httpx.Client(timeout=30) as client:
            http = []
            for _ in range(spec["requests"]):
                t0 = time.perf_counter()
                client.get(f"{base}/healthz")
                http.append(time.perf_counter() - t0)
            feed = OrderFeed(base, product_ids)
            intake = [feed.post_one(client) for _ in range(spec["requests"])]
            fresh, cached = [], []
            for _ in range(spec["menus"]):
                feed.post_one(client)  # the store changed: the next menu is rebuilt
                t0 = time.perf_counter()
                r = client.get(f"{base}/api/v1/menu", headers=_signed(b""))
                fresh.append(time.perf_counter() - t0)
                assert r.status_code == 200 and len(r.json()["products"]) >= spec["products"]
                t0 = time.perf_counter()
                client.get(f"{base}/api/v1/menu", headers=_signed(b""))
                cached.append(time.perf_counter() - t0)
            assert feed.errors == 0, f"{feed.errors} intake errors"
        scan_quiet = _loadgen(hub, plan, p, work, "quiet")
        flowing = OrderFeed(base, product_ids)
        flowing.start(spec["feed_pause"])
        try:
            scan_busy = _loadgen(hub, plan, p, work, "orders")
        finally:
            flowing.stop()
        log(
            f"orders: intake p50 {_p50(intake) * 1e3:.2f} ms, menu p50 rebuilt {_p50(fresh) * 1e3:.1f} ms / cached "
            f"{_p50(cached) * 1e3:.2f} ms (raw scan {scan_floor * 1e3:.1f} ms), scan p50 {scan_quiet * 1e3:.2f} ms "
            f"quiet / {scan_busy * 1e3:.2f} ms with {len(flowing.latencies)} orders flowing"
        )
    finally:
        hub.stop()
    return {
        **spec,
        "http_p50": _p50(http),
        "intake_p50": _p50(intake),
        "menu_fresh_p50": _p50(fresh),
        "menu_cached_p50": _p50(cached),
        "raw_menu_scan_p50": scan_floor,
        "scan_p50_quiet": scan_quiet,
        "scan_p50_orders": scan_busy,
        "orders_during_scan": len(flowing.latencies),
        "intake_p50_during_scan": _p50(flowing.latencies),
        "feed_errors": flowing.errors,
    }


def _loadgen(hub: HubProcess, plan: dict[str, Any], p: dict[str, Any], work: Path, tag: str) -> float:
    r_index = 1 if tag == "quiet" else 2  # each run pairs its own register with its own code
    staff, _, _, pin = dataset.staff_for(r_index)
    lg_plan = {
        **plan,
        "ws_url": hub.ws_url,
        "metrics_url": hub.metrics_url,
        "registers": [
            {
                "id": dataset.register_id(r_index),
                "code": dataset.pairing_code(r_index),
                "staff": staff,
                "pin": pin,
            }
        ],
        "customer_start": 0 if tag == "quiet" else 100,
        "customer_count": 100,
        "seconds": p["seconds"],
        "max_sales_per_register": p["max_sales_per_register"],
    }
    plan_file = work / "orders" / f"plan-{tag}.json"
    plan_file.write_text(json.dumps(lg_plan))
    out = run_loadgen(plan_file, p["seconds"])
    return float(out["rtt"]["scan"]["p50"])


def ratios(o: dict[str, Any], raw_: dict[str, Any]) -> dict[str, Any]:
    commit = (
        raw_["durable_commits"][1]["p50"]
        if 1 in raw_["durable_commits"]
        else raw_["durable_commits"]["1"]["p50"]
    )
    values = {
        "order_intake_vs_commit_http": (
            o["intake_p50"] / (commit + o["http_p50"]),
            f"signed order intake p50 ({o['open_orders']} open orders) / (raw durable commit p50 + HTTP round trip p50)",
        ),
        "menu_rebuild_vs_scan": (
            o["menu_fresh_p50"] / (o["raw_menu_scan_p50"] + o["http_p50"]),
            f"menu p50 after a change, {o['products']} products / (raw scan+decode of its tables + HTTP round trip)",
        ),
        "menu_cached_vs_http": (
            o["menu_cached_p50"] / o["http_p50"],
            "unchanged menu p50 / HTTP round trip p50",
        ),
        "scan_with_orders_vs_without": (
            o["scan_p50_orders"] / o["scan_p50_quiet"],
            "register scan p50 while orders flow in / without (1 register)",
        ),
    }
    out = {}
    for key, (value, how) in values.items():
        op, target = TARGETS[key]
        ok = value <= target if op == "<=" else value >= target
        out[key] = {"value": float(value), "target": f"{op} {target:g}", "pass": bool(ok), "how": how}
    return out
