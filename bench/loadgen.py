"""The load generator: N registers, each a ``hub.client`` connection running complete sales against a
hub that was started as a user starts it. Runs in its own process; prints one JSON object.

    python -m bench.loadgen PLAN.json

The plan names the hub's URLs, the registers (id, pairing code, staff, PIN), the manager who witnesses
the drawer count, the package tags to scan and the customer range, and bounds: seconds and sales.
Every register: pair, log in, open its drawer (not timed); then, until the bound, sales: scan a licence
(check-in), scan three package tags, set the scale, weigh one line of bulk flower, pay cash.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time
import urllib.request
from datetime import date
from typing import Any

import trio

from bench.dataset import FLOAT, customer_scan
from bench.stats import summary
from hub.client import ClientError, HubClient, connect

SCANS_PER_SALE = 3
WEIGHT_MG = 1_000
CASH_CENTS = 500_00


def scrape(url: str) -> str:
    if not url:  # a server without metrics (bench.nullhub)
        return ""
    with urllib.request.urlopen(url, timeout=10) as r:  # loopback only
        return r.read().decode()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat), all its threads."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """User + system CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def start_profiler(spec: dict[str, Any], seconds: float) -> subprocess.Popen[bytes]:
    """py-spy on the hub for the measured window: raw stacks per thread (the trio thread and the store
    writer apart), sampled without pausing the hub."""
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(spec["pid"]),
            "--format",
            "raw",
            "--rate",
            str(spec["rate"]),
            "--threads",
            "--nonblocking",
            "--duration",
            str(max(1, round(seconds))),
            "--output",
            spec["out"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Load:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.today = date.fromisoformat(plan["today"])
        self.rtt: dict[str, list[float]] = {"checkin": [], "scan": [], "scale": [], "weigh": [], "pay": []}
        self.sale_seconds: list[float] = []
        self.errors: dict[str, int] = {}
        self.close_errors: dict[str, int] = {}
        self.requests = 0
        self.frames_in = 0
        self.bytes_in = 0
        self.next_customer = plan["customer_start"]
        self.ready = trio.Event()
        self.waiting = len(plan["registers"])
        self.window = [0.0, 0.0]
        self.metrics_before = ""
        self.sales_done = 0
        self.spy: subprocess.Popen[bytes] | None = None
        self.hub_cpu = [0.0, 0.0]
        self.own_cpu = [0.0, 0.0]  # this process's, over the same window

    def customer(self) -> int:
        i = self.next_customer
        self.next_customer += 1
        if self.next_customer >= self.plan["customer_start"] + self.plan["customer_count"]:
            self.next_customer = self.plan["customer_start"]
        return i

    async def timed(self, c: HubClient, kind: str, type_: str, **fields: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await c.request(type_, timeout=30, **fields)
        finally:
            self.requests += 1
            self.rtt[kind].append(time.perf_counter() - t0)

    async def register(self, reg: dict[str, Any], rng: random.Random) -> None:
        finished = [False]
        try:
            await self._register(reg, rng, finished)
        except Exception as exc:
            if not finished[0]:
                raise
            # the measured work is done; a close that goes wrong (trio-websocket answering a hub ping
            # while closing raises wsproto's LocalProtocolError) is counted, not fatal
            name = type(exc).__name__
            self.close_errors[name] = self.close_errors.get(name, 0) + 1

    async def _register(self, reg: dict[str, Any], rng: random.Random, finished: list[bool]) -> None:
        p = self.plan
        async with connect(p["ws_url"]) as c:
            await c.pair(reg["code"], device_name=f"bench {reg['id']}")
            await c.login(reg["staff"], reg["pin"])
            await c.request(
                "open_drawer", counted=FLOAT, witness=p["manager"]["id"], witness_pin=p["manager"]["pin"]
            )
            self.waiting -= 1
            if self.waiting == 0:
                self.metrics_before = await trio.to_thread.run_sync(scrape, p["metrics_url"])
                self.hub_cpu[0] = process_cpu_s(p.get("hub_pid", 0))
                self.own_cpu[0] = own_cpu_s()
                self.window[0] = time.perf_counter()
                self.window[1] = self.window[0] + p["seconds"]
                if "profile" in p:
                    self.spy = start_profiler(p["profile"], p["seconds"])
                self.ready.set()
            await self.ready.wait()
            sales = 0
            units, weighed = p["unit_tags"], p["weight_tags"]
            while sales < p["max_sales_per_register"] and time.perf_counter() < self.window[1]:
                t0 = time.perf_counter()
                try:
                    await self.timed(c, "checkin", "scan", data=customer_scan(self.customer(), self.today))
                    for tag in rng.sample(units, SCANS_PER_SALE):
                        await self.timed(c, "scan", "scan", data=tag)
                    await self.timed(c, "scale", "demo_scale", weight_mg=WEIGHT_MG, motion=False)
                    await self.timed(c, "weigh", "weigh_line", tag=rng.choice(weighed))
                    await self.timed(c, "pay", "pay", tenders=[{"kind": "cash", "amount_cents": CASH_CENTS}])
                except ClientError as exc:
                    self.errors[exc.code] = self.errors.get(exc.code, 0) + 1
                    await c.request("end_customer")
                    continue
                self.sale_seconds.append(time.perf_counter() - t0)
                sales += 1
                self.sales_done += 1
            self.frames_in += len(c.snapshots)
            finished[0] = True


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    load = Load(plan)
    with trio.fail_after(plan["seconds"] + plan.get("setup_timeout", 120)):
        async with trio.open_nursery() as nursery:
            for k, reg in enumerate(plan["registers"]):
                nursery.start_soon(load.register, reg, random.Random(k))
    end = time.perf_counter()
    load.hub_cpu[1] = process_cpu_s(plan.get("hub_pid", 0))
    load.own_cpu[1] = own_cpu_s()
    metrics_after = await trio.to_thread.run_sync(scrape, plan["metrics_url"])
    if load.spy is not None:
        await trio.to_thread.run_sync(load.spy.wait)
    elapsed = end - load.window[0]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "registers": len(plan["registers"]),
        "seconds": elapsed,
        "sales": load.sales_done,
        "sales_per_s": load.sales_done / elapsed if elapsed > 0 else 0.0,
        "requests": load.requests,
        "requests_per_sale": load.requests / load.sales_done if load.sales_done else 0.0,
        "errors": load.errors,
        "close_errors": load.close_errors,
        "sale": summary(load.sale_seconds),
        "rtt": {k: summary(v) for k, v in load.rtt.items()},
        "loadgen_cpu_s": ru.ru_utime + ru.ru_stime,
        # over the measured window only, like the hub's (no imports, pairing, logins or drawer counts)
        "loadgen_window_cpu_s": load.own_cpu[1] - load.own_cpu[0],
        # the hub's CPU (every thread) over the window: per request, the figure that decides how many
        # sales one core carries, and steadier than wall time on a shared machine
        "hub_cpu_s": load.hub_cpu[1] - load.hub_cpu[0],
        "hub_cpu_us_per_request": (load.hub_cpu[1] - load.hub_cpu[0]) / load.requests * 1e6
        if load.requests
        else 0.0,
        "metrics_before": load.metrics_before,
        "metrics_after": metrics_after,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0], encoding="utf-8") as f:
        plan = json.load(f)
    print(json.dumps(trio.run(run, plan)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
