"""The hub as a user starts it (``python -m hub.cli run --config FILE``), in its own process, and the
hub's own code paths timed in-process against the same prepared store (the package-plus-allotment lookup)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.dataset import ID_HASH_KEY, UNIT_PRODUCTS, customer_scan
from bench.stats import summary

_ANNOUNCE = re.compile(r"Live protocol: (ws://\S+)\s+Metrics: (http://\S+)")


class HubProcess:
    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: Any = None
        self.ws_url = ""
        self.metrics_url = ""

    def start(self, timeout: float = 120) -> HubProcess:
        out = self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--config", str(self.config), "--log-level", "WARNING"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = _ANNOUNCE.search(self.log.read_text("utf-8", "replace"))
            if m:
                self.ws_url, self.metrics_url = m.group(1), m.group(2)
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.proc.returncode}; see {self.log}")
            time.sleep(0.05)  # blocking-ok: the bench driver is plain synchronous code, no event loop
        self.stop()
        raise TimeoutError(f"the hub did not announce itself within {timeout} s; see {self.log}")

    def memory(self) -> dict[str, float]:
        """VmRSS, VmHWM, RssAnon and RssFile of the hub in MB, from /proc/<pid>/status."""
        assert self.proc is not None
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
        return out

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        try:
            if self.proc is None or self.proc.poll() is not None:
                return
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        finally:
            if self._out is not None:
                self._out.close()
                self._out = None


def lookup_timings(data_dir: Path, config_path: Path, plan: dict[str, Any], n: int) -> dict[str, Any]:
    """The hub's own lookup, function for function: package + product reads (``inv.package``,
    ``inv.product``) and the allotment (``check_limits``: ledger range scan + limits engine), for a
    checked-in customer with history and a cart of one package. Run against the prepared store before
    the hub opens it."""
    import random

    import msgspec

    from hub.config import load_config
    from hub.domain import aamva
    from hub.domain import cart as carts
    from hub.domain.limits.rules import store_jurisdiction
    from hub.domain.tax import TaxTable
    from hub.sale import inventory as inv
    from hub.sale.checkin import check_in_licence as _check_in_licence
    from hub.sale.context import SaleContext, SaleSettings
    from hub.sale.opening import DEFAULT_TAXES
    from hub.sale.view import check_limits
    from hub.store.env import Store

    cfg = load_config(config_path)
    store = Store(data_dir, map_size=cfg.storage.map_size_mb << 20)
    try:
        ctx = SaleContext(
            store,
            cfg,
            store_jurisdiction(cfg.store.jurisdiction, cfg.store.time_zone),
            SaleSettings(tax_table=msgspec.convert(DEFAULT_TAXES, TaxTable)),
            ID_HASH_KEY.encode(),
        )
        today = date.fromisoformat(plan["today"])
        rng = random.Random(4)
        customers = [
            _check_in_licence(
                ctx, aamva.parse_licence(customer_scan(rng.randrange(plan["customers"]), today)), "adult"
            )
            for _ in range(50)
        ]
        tags = plan["unit_tags"]
        now = datetime.now(UTC)
        pc = time.perf_counter
        total, pkg_s, alt_s = [], [], []
        for k in range(n):
            customer = customers[k % len(customers)]
            tag = tags[rng.randrange(len(tags))]
            t0 = pc()
            pkg = inv.package(store, tag)
            product = inv.product(store, pkg.product_id) if pkg else None
            t1 = pc()
            cart = carts.new_cart("bench", "R001", now, customer.customer_id)
            change = carts.add_package(cart, pkg, product, today, quantity=1, now=now)
            cart = change.cart  # type: ignore[union-attr]
            t2 = pc()
            with store.read() as txn:
                check_limits(ctx, txn, customer, cart, now)
            t3 = pc()
            pkg_s.append(t1 - t0)
            alt_s.append(t3 - t2)
            total.append((t1 - t0) + (t3 - t2))
        assert product is not None and product.id in UNIT_PRODUCTS
    finally:
        store.close()
    return {
        "package_plus_allotment": summary(total),
        "package_product": summary(pkg_s),
        "allotment": summary(alt_s),
    }


def machine() -> dict[str, Any]:
    import platform

    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    import lmdb
    import msgspec
    import trio
    import trio_websocket

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "trio": trio.__version__,
        "trio_websocket": trio_websocket.__version__,
        "lmdb": lmdb.__version__,
        "msgspec": msgspec.__version__,
        "filesystem": _fs_of(Path(os.environ.get("BENCH_DATA_DIR") or "/tmp")),
    }


def _fs_of(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, timeout=5).stdout
        parts = out.splitlines()[1].split()
        return f"{parts[1]} on {parts[0]}"
    except Exception:
        return "unknown"


def run_loadgen(plan_file: Path, seconds: float, against: str = "the hub") -> dict[str, Any]:
    """``python -m bench.loadgen PLAN`` in its own process; its JSON result."""
    r = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", str(plan_file)],
        capture_output=True,
        text=True,
        timeout=seconds + 300,
    )
    if r.returncode != 0:
        raise RuntimeError(f"load generator failed against {against}:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout)  # type: ignore[no-any-return]


@contextmanager
def serving(*module_args: str) -> Iterator[dict[str, Any]]:
    """``python -m MODULE ARGS`` as a server that prints one JSON line (its port, ...) and serves until its
    stdin closes; yields that line, then stops it."""
    server = subprocess.Popen(
        [sys.executable, "-m", *module_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        yield json.loads(server.stdout.readline())
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        server.stdout.close()
