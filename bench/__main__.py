"""``python -m bench [--quick] [--out FILE]``: the hub's figures as ratios of this machine's own limits.

1. Raw limits, bare libraries: LMDB get + msgspec decode; durable commits of a sale-sized write set at
   batch sizes 1, 10, 100; a trio-websocket echo server with 1, 20 and 50 clients (server and clients in
   their own processes).
2. The hub, started as a user starts it (``python -m hub.cli run --config FILE``) on a prepared store,
   under ``bench.loadgen`` in another process: 1, 20 and 50 registers running complete sales with 10k
   packages and no history, then 1 and 50 registers with 100k packages, 100k customers and 1M past sales.
3. The ratios the issue asks for, each with its target, printed and written as JSON.

``--only scan,sales,memory [--repeat 3]`` measures just issue 13's hot-path figures (``scan_rtt_vs_echo_1``,
``sales_vs_ceiling_50``, the hub's RssAnon beside VmRSS and RssFile with 100k packages and 1M past sales after a
load), each run from fresh stores, reported as median and spread with the load average: a before/after
comparison in minutes. ``--profile DIR`` records py-spy stacks of the hub (per thread) during each measured window.

``--quick`` runs the same steps small (registers 1/4/8 stand in for 1/20/50) in well under a minute, for
CI: it checks that everything runs and every ratio is computed, and asserts no threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import dataset, raw
from bench import orders as bench_orders
from bench.hubproc import HubProcess, lookup_timings, machine, run_loadgen, serving
from bench.stats import histogram_delta, histogram_quantile, parse_metrics

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "results" / "latest.json"

FULL: dict[str, Any] = {
    "lmdb_keys": 100_000,
    "lmdb_lookups": 200_000,
    "commits": {1: 600, 10: 200, 100: 40},
    "thread_hops": 2000,
    "echo_clients": (1, 20, 50),
    "echo_seconds": 5.0,
    "message_size": 300,
    "small": {"packages": 10_000, "customers": 10_000, "history": 0, "points": (1, 20, 50)},
    "large": {"packages": 100_000, "customers": 100_000, "history": 1_000_000, "points": (1, 50)},
    "seconds": 10.0,
    "max_sales_per_register": 5_000,
    "lookups": 20_000,
    "map_mb": 8192,
    # online orders (issue 14): a large menu and open orders, measured over HTTP
    "orders": {
        "products": 5_000,
        "packages_per_product": 4,
        "open_orders": 200,
        "requests": 200,
        "menus": 20,
        "feed_pause": 0.02,
    },
}
QUICK: dict[str, Any] = {
    **FULL,
    "lmdb_keys": 10_000,
    "lmdb_lookups": 20_000,
    "commits": {1: 60, 10: 20, 100: 5},
    "thread_hops": 300,
    "echo_clients": (1, 4, 8),
    "echo_seconds": 1.5,
    "small": {"packages": 2_000, "customers": 2_000, "history": 0, "points": (1, 4, 8)},
    "large": {"packages": 5_000, "customers": 5_000, "history": 20_000, "points": (1,)},
    "seconds": 2.5,
    "max_sales_per_register": 500,
    "lookups": 3_000,
    "map_mb": 512,
    "orders": {
        "products": 1_000,
        "packages_per_product": 2,
        "open_orders": 50,
        "requests": 30,
        "menus": 5,
        "feed_pause": 0.05,
    },
}
TARGETS = {
    "lookup_vs_lmdb": ("<=", 2.0),
    "scan_rtt_vs_echo_1": ("<=", 1.5),
    "scan_p99_vs_echo_p99_50": ("<=", 2.0),
    "sales_vs_ceiling_50": (">=", 0.6),
    "growth_history": ("<=", 1.2),
    "rss_mb_100k": ("<=", 200.0),
    "rss_anon_mb_100k": ("<=", 100.0),
}
# issue 13's targets for the hot path (``--only``): a step towards TARGETS, not a replacement
ISSUE13_TARGETS = {
    "scan_rtt_vs_echo_1": ("<=", 2.5),
    "sales_vs_ceiling_50": (">=", 0.3),
    "rss_anon_mb_100k": ("<=", 100.0),
}
PARTS = ("scan", "sales", "memory")
PROFILE_RATE = 250  # py-spy samples/s: a scan is ~0.4 ms, so a 10 s window gives thousands of samples


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- raw
def run_echo(clients: tuple[int, ...], size: int, seconds: float) -> dict[int, dict[str, Any]]:
    out = {}
    with serving("bench.echo", "serve") as hello:
        for n in clients:
            args = ["--port", str(hello["port"]), "--clients", str(n), "--size", str(size)]
            r = subprocess.run(
                [sys.executable, "-m", "bench.echo", "clients", *args, "--seconds", str(seconds)],
                capture_output=True,
                text=True,
                timeout=seconds + 120,
                check=True,
            )
            out[n] = json.loads(r.stdout)
            log(
                f"echo {n} clients: p50 {out[n]['p50'] * 1e6:.0f} us, p99 {out[n]['p99'] * 1e6:.0f} us, "
                f"{out[n]['round_trips_per_s']:.0f} round trips/s"
            )
    return out


def raw_limits(p: dict[str, Any]) -> dict[str, Any]:
    log("raw: LMDB get + decode")
    get = raw.lmdb_get_decode(p["lmdb_keys"], p["lmdb_lookups"])
    commits = {}
    for b, n in p["commits"].items():
        commits[b] = raw.durable_commits(b, n)
        log(
            f"raw: durable commit batch {b}: p50 {commits[b]['p50'] * 1e3:.2f} ms, "
            f"{commits[b]['sales_per_s']:.0f} sale write sets/s"
        )
    hop = raw.thread_hop(p["thread_hops"])
    echo = run_echo(p["echo_clients"], p["message_size"], p["echo_seconds"])
    return {"lmdb_get_decode": get, "durable_commits": commits, "thread_hop": hop, "echo": echo}


def commits_per_s_at(commits: dict[int, dict[str, Any]], batch: float) -> float:
    """Raw durable sale write sets per second at ``batch``, interpolated on log(batch) between measured sizes."""
    sizes = sorted(commits)
    if batch <= sizes[0]:
        return float(commits[sizes[0]]["sales_per_s"])
    for lo, hi in zip(sizes, sizes[1:], strict=False):
        if batch <= hi:
            f = (math.log(batch) - math.log(lo)) / (math.log(hi) - math.log(lo))
            return float(
                commits[lo]["sales_per_s"] + f * (commits[hi]["sales_per_s"] - commits[lo]["sales_per_s"])
            )
    return float(commits[sizes[-1]]["sales_per_s"])


# ---------------------------------------------------------------------------------------------- hub
def run_dataset(
    name: str,
    spec: dict[str, Any],
    p: dict[str, Any],
    work: Path,
    profile: Path | None,
    *,
    lookups: bool = True,
) -> dict[str, Any]:
    registers = sum(spec["points"])
    (work / name).mkdir(parents=True, exist_ok=True)
    data = work / name / "data"
    config = dataset.write_config(work / name / "store.toml", data, registers, map_mb=p["map_mb"])
    log(
        f"{name}: preparing {spec['packages']} packages, {spec['customers']} customers, {spec['history']} past sales"
    )
    t0 = time.perf_counter()
    plan = dataset.prepare(
        data,
        packages=spec["packages"],
        customers=spec["customers"],
        history=spec["history"],
        registers=registers,
        map_mb=p["map_mb"],
    )
    prep_s = time.perf_counter() - t0
    lookup = None
    if lookups:
        log(f"{name}: prepared in {prep_s:.1f} s; timing the hub's lookup in-process")
        lookup = lookup_timings(data, config, plan, p["lookups"])
    hub = HubProcess(config, work / name / "hub.log")
    t0 = time.perf_counter()
    hub.start()
    start_s = time.perf_counter() - t0
    idle_mem = hub.memory()
    log(
        f"{name}: hub pid {hub.pid} up in {start_s:.1f} s, VmRSS {idle_mem['VmRSS']:.0f} MB, "
        f"RssAnon {idle_mem['RssAnon']:.0f} MB"
    )
    points = {}
    try:
        first_register, first_customer = 1, 0
        per_point_customers = spec["customers"] // len(spec["points"])
        for n in spec["points"]:
            regs = []
            for r in range(first_register, first_register + n):
                staff, _, _, pin = dataset.staff_for(r)
                regs.append(
                    {
                        "id": dataset.register_id(r),
                        "code": dataset.pairing_code(r),
                        "staff": staff,
                        "pin": pin,
                    }
                )
            first_register += n
            lg_plan = {
                **plan,
                "ws_url": hub.ws_url,
                "metrics_url": hub.metrics_url,
                "registers": regs,
                "customer_start": first_customer,
                "customer_count": per_point_customers,
                "seconds": p["seconds"],
                "max_sales_per_register": p["max_sales_per_register"],
                "hub_pid": hub.pid,
            }
            first_customer += per_point_customers
            plan_file = work / name / f"plan-{n}.json"
            plan_file.write_text(json.dumps(lg_plan))
            if profile is not None:
                # the load generator starts py-spy when its measured window opens (pairing, scrypt
                # logins and drawer counts stay out of the profile) and waits for it
                profile.mkdir(parents=True, exist_ok=True)
                lg_plan["profile"] = {
                    "pid": hub.pid,
                    "rate": p.get("profile_rate", PROFILE_RATE),
                    "out": str(profile / f"{name}-{n}.txt"),
                }
                plan_file.write_text(json.dumps(lg_plan))
            points[n] = summarize_point(run_loadgen(plan_file, p["seconds"]), hub.memory())
            pt = points[n]
            log(
                f"{name} {n} registers: {pt['sales_per_s']:.1f} sales/s, sale p50 {pt['sale_p50_ms']:.1f} ms, "
                f"scan p50 {pt['scan_p50_ms']:.2f} ms p99 {pt['scan_p99_ms']:.2f} ms, commit p99 "
                f"{pt['commit_p99_ms']:.2f} ms, batch {pt['batch_mean']:.1f}, VmRSS {pt['rss_mb']:.0f} MB "
                f"(RssAnon {pt['memory_mb']['RssAnon']:.0f}, RssFile {pt['memory_mb']['RssFile']:.0f}), "
                f"hub CPU {pt['hub_cpu_us_per_request']:.0f} us/request, errors {pt['errors']}"
            )
    finally:
        hub.stop()
    return {
        "packages": spec["packages"],
        "customers": spec["customers"],
        "history": spec["history"],
        "prepare_s": prep_s,
        "hub_start_s": start_s,
        "idle_memory_mb": idle_mem,
        "lookup": lookup,
        "points": points,
    }


def summarize_point(lg: dict[str, Any], mem: dict[str, float]) -> dict[str, Any]:
    before, after = parse_metrics(lg.pop("metrics_before")), parse_metrics(lg.pop("metrics_after"))
    commit_b, commit_sum, commit_n = histogram_delta(before, after, "storehub_writer_commit_seconds")
    batch_b, batch_sum, batch_n = histogram_delta(before, after, "storehub_writer_batch_size")
    scan_b, _, _ = histogram_delta(before, after, "storehub_scan_seconds")
    return {
        **lg,
        "sale_p50_ms": lg["sale"]["p50"] * 1e3,
        "scan_p50_ms": lg["rtt"]["scan"]["p50"] * 1e3,
        "scan_p99_ms": lg["rtt"]["scan"]["p99"] * 1e3,
        "commit_p50_ms": histogram_quantile(0.5, commit_b) * 1e3,
        "commit_p99_ms": histogram_quantile(0.99, commit_b) * 1e3,
        "commit_mean_ms": commit_sum / commit_n * 1e3 if commit_n else math.nan,
        "commits": commit_n,
        "batch_mean": batch_sum / batch_n if batch_n else math.nan,
        "writes": batch_sum,
        "writes_per_sale": batch_sum / lg["sales"] if lg["sales"] else math.nan,
        "hub_scan_p99_ms": histogram_quantile(0.99, scan_b) * 1e3,
        "rss_mb": mem.get("VmRSS", math.nan),
        "memory_mb": mem,
    }


# ---------------------------------------------------------------------------------------------- ratios
def scan_figure(
    echo: dict[Any, dict[str, Any]], small: dict[str, Any], p: dict[str, Any]
) -> tuple[float, str]:
    """``scan_rtt_vs_echo_1``: a package scan's round trip at one register against a bare echo's, 1 client."""
    one, clients = p["small"]["points"][0], p["echo_clients"][0]
    s1 = small["points"][one]
    return (
        s1["rtt"]["scan"]["p50"] / echo[clients]["p50"],
        f"scan round trip p50, {one} register / echo p50, {clients} client",
    )


def sales_figure(raw_: dict[str, Any], small: dict[str, Any], p: dict[str, Any]) -> tuple[float, str]:
    """``sales_vs_ceiling_50``: sales/s at the top register count against the lower of this machine's two
    ceilings: echo round trips/s over the requests a sale takes, and raw durable sale write sets/s at the
    writer's batch size."""
    top = p["small"]["points"][-1]
    stop = small["points"][top]
    ceiling_rt = max(e["round_trips_per_s"] for e in raw_["echo"].values())
    commit_ceiling = commits_per_s_at(raw_["durable_commits"], stop["batch_mean"])
    echo_ceiling = ceiling_rt / stop["requests_per_sale"] if stop["requests_per_sale"] else math.nan
    return (
        stop["sales_per_s"] / min(echo_ceiling, commit_ceiling),
        f"sales/s at {top} registers / min(echo ceiling {ceiling_rt:.0f}/s / "
        f"{stop['requests_per_sale']:.1f} requests per sale = {echo_ceiling:.0f}, raw durable "
        f"sales/s at batch {stop['batch_mean']:.1f} = {commit_ceiling:.0f})",
    )


def memory_point(large: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """The large store's last load point (the most registers): /proc/<pid>/status of the hub after it."""
    return large["points"][p["large"]["points"][-1]]


def judged(values: dict[str, tuple[float, str]], targets: dict[str, tuple[str, float]]) -> dict[str, Any]:
    out = {}
    for key, (value, how) in values.items():
        op, target = targets[key]
        ok = value <= target if op == "<=" else value >= target
        out[key] = {"value": value, "target": f"{op} {target:g}", "pass": bool(ok), "how": how}
    return out


def ratios(
    raw_: dict[str, Any], small: dict[str, Any], large: dict[str, Any], p: dict[str, Any]
) -> dict[str, Any]:
    one, _, top = p["small"]["points"]
    echo = raw_["echo"]
    echo_top = echo[p["echo_clients"][-1]]
    s1, stop = small["points"][one], small["points"][top]
    l1 = large["points"][p["large"]["points"][0]]
    mem = memory_point(large, p)
    values = {
        "lookup_vs_lmdb": (
            small["lookup"]["package_plus_allotment"]["p50"] / raw_["lmdb_get_decode"]["p50"],
            "hub package+allotment lookup p50 (10k packages) / LMDB get+decode p50",
        ),
        "scan_rtt_vs_echo_1": scan_figure(echo, small, p),
        "scan_p99_vs_echo_p99_50": (
            stop["rtt"]["scan"]["p99"] / echo_top["p99"],
            f"scan p99, {top} registers / echo p99, {p['echo_clients'][-1]} clients",
        ),
        "sales_vs_ceiling_50": sales_figure(raw_, small, p),
        "growth_history": (
            l1["sale"]["p50"] / s1["sale"]["p50"],
            f"sale p50, {large['packages']} packages + {large['history']} history / "
            f"{small['packages']} packages + none (1 register)",
        ),
        "rss_mb_100k": (
            mem["rss_mb"],
            f"hub VmRSS MB with {large['packages']} packages, {large['customers']} customers",
        ),
        "rss_anon_mb_100k": (
            mem["memory_mb"]["RssAnon"],
            f"hub RssAnon (private) MB with {large['packages']} packages, {large['history']} past sales, "
            f"after {p['large']['points'][-1]} registers' load; VmRSS {mem['memory_mb']['VmRSS']:.0f}, "
            f"RssFile {mem['memory_mb']['RssFile']:.0f}",
        ),
    }
    return judged(values, TARGETS)


# ---------------------------------------------------------------------------------------------- null hub
NULL_HUB_REPLY_BYTES = 1_900  # the real hub's frames averaged 1,947 bytes at 50 registers (2026-12-01)


def run_null_hub(plan_file: Path, work: Path) -> dict[str, Any]:
    """The same load generator and plan as the real hub's top point, against ``bench.nullhub`` (answers
    only): the sales/s a hub with no work of its own would reach on this machine with this load generator."""
    with serving("bench.nullhub", "serve", "--reply-bytes", str(NULL_HUB_REPLY_BYTES)) as hello:
        plan = json.loads(plan_file.read_text())
        plan.pop("profile", None)
        plan.update(ws_url=f"ws://127.0.0.1:{hello['port']}/", metrics_url="", hub_pid=hello["pid"])
        null_plan = work / "plan-null-hub.json"
        null_plan.write_text(json.dumps(plan))
        out = run_loadgen(null_plan, plan["seconds"], against="the null hub")
    keep = (
        "registers",
        "seconds",
        "sales",
        "sales_per_s",
        "requests",
        "requests_per_sale",
        "errors",
        "loadgen_window_cpu_s",
    )
    point = {k: out[k] for k in keep}
    point["server_cpu_us_per_request"] = out["hub_cpu_us_per_request"]
    point["loadgen_cpu_us_per_request"] = (
        out["loadgen_window_cpu_s"] / out["requests"] * 1e6 if out["requests"] else 0.0
    )
    log(
        f"null hub {point['registers']} registers: {point['sales_per_s']:.1f} sales/s, server CPU "
        f"{point['server_cpu_us_per_request']:.0f} us/request, load generator CPU "
        f"{point['loadgen_cpu_us_per_request']:.0f} us/request, errors {point['errors']}"
    )
    return point


# ---------------------------------------------------------------------------------------------- --only
def run_parts(p: dict[str, Any], parts: tuple[str, ...], work: Path, profile: Path | None) -> dict[str, Any]:
    """One pass over the chosen parts of the issue-13 figures, measuring only what they need:
    ``scan``: echo with 1 client and 1 register's sales on the small store; ``sales``: echo at every client
    count, raw durable commits and the top register count on the small store; ``memory``: the large store
    (100k packages, 1M past sales) under the top register count, then the hub's /proc/<pid>/status."""
    clients = p["echo_clients"] if "sales" in parts else p["echo_clients"][:1]
    raw_: dict[str, Any] = {"echo": run_echo(clients, p["message_size"], p["echo_seconds"])}
    if "sales" in parts:
        raw_["durable_commits"] = {b: raw.durable_commits(b, n) for b, n in p["commits"].items()}
    one, top = p["small"]["points"][0], p["small"]["points"][-1]
    small_points = tuple(n for n, part in ((one, "scan"), (top, "sales")) if part in parts)
    small = large = None
    if small_points:
        small = run_dataset("small", {**p["small"], "points": small_points}, p, work, profile, lookups=False)
    if "memory" in parts:
        spec = {**p["large"], "points": (p["large"]["points"][-1],)}
        large = run_dataset("large", spec, p, work, profile, lookups=False)
    values: dict[str, tuple[float, str]] = {}
    detail: dict[str, Any] = {}
    if small is not None and "scan" in parts:
        values["scan_rtt_vs_echo_1"] = scan_figure(raw_["echo"], small, p)
        pt = small["points"][one]
        detail["scan_p50_us"] = pt["rtt"]["scan"]["p50"] * 1e6
        detail["echo_1_p50_us"] = raw_["echo"][clients[0]]["p50"] * 1e6
        detail["hub_cpu_us_per_request_1"] = pt["hub_cpu_us_per_request"]
    if small is not None and "sales" in parts:
        values["sales_vs_ceiling_50"] = sales_figure(raw_, small, p)
        pt = small["points"][top]
        detail["sales_per_s"] = pt["sales_per_s"]
        detail["echo_round_trips_per_s"] = max(e["round_trips_per_s"] for e in raw_["echo"].values())
        detail["requests_per_sale"] = pt["requests_per_sale"]
        detail["batch_mean"] = pt["batch_mean"]
        detail["hub_cpu_us_per_request_50"] = pt["hub_cpu_us_per_request"]
        detail["loadgen_cpu_us_per_request_50"] = pt["loadgen_window_cpu_s"] / pt["requests"] * 1e6
        null = run_null_hub(work / "small" / f"plan-{top}.json", work)
        # against the echo ceiling alone: read beside sales_vs_ceiling_50 while echo is its lower ceiling
        null_ceiling = detail["echo_round_trips_per_s"] / null["requests_per_sale"]
        detail["null_hub_vs_ceiling_50"] = null["sales_per_s"] / null_ceiling
        detail["null_hub_server_cpu_us_per_request_50"] = null["server_cpu_us_per_request"]
        detail["null_hub_loadgen_cpu_us_per_request_50"] = null["loadgen_cpu_us_per_request"]
        raw_["null_hub"] = null
    if large is not None:
        mem = memory_point(large, p)["memory_mb"]
        values["rss_anon_mb_100k"] = (
            mem["RssAnon"],
            f"hub RssAnon MB, {large['packages']} packages + {large['history']} past sales, after a load",
        )
        detail.update({f"{k}_mb": v for k, v in mem.items()})
        detail["idle_RssAnon_mb"] = large["idle_memory_mb"]["RssAnon"]
    return {
        "figures": judged(values, ISSUE13_TARGETS),
        "detail": detail,
        "raw": raw_,
        "hub": {"small": small, "large": large},
    }


def spread(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def run_only(
    p: dict[str, Any], parts: tuple[str, ...], repeat: int, keep: bool, profile: Path | None
) -> dict[str, Any]:
    runs = []
    for k in range(repeat):
        work = Path(tempfile.mkdtemp(prefix="storehub-bench-", dir=os.environ.get("BENCH_DATA_DIR")))
        load_before = os.getloadavg()
        ok = False
        try:
            log(f"run {k + 1}/{repeat} of {','.join(parts)}; load average {load_before[0]:.2f}")
            run = run_parts(p, parts, work, profile / f"run{k + 1}" if profile else None)
            ok = True
        finally:
            if keep or not ok:
                log(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        run["load_average"] = {"before": list(load_before), "after": list(os.getloadavg())}
        runs.append(run)
    keys = list(runs[0]["figures"])
    figures = {}
    for key in keys:
        figures[key] = {
            **spread([r["figures"][key]["value"] for r in runs]),
            "target": runs[0]["figures"][key]["target"],
            "how": runs[0]["figures"][key]["how"],
        }
        op, target = ISSUE13_TARGETS[key]
        m = figures[key]["median"]
        figures[key]["pass"] = bool(m <= target if op == "<=" else m >= target)
    detail = {key: spread([r["detail"][key] for r in runs]) for key in runs[0]["detail"]}
    loads = [r["load_average"]["before"][0] for r in runs] + [r["load_average"]["after"][0] for r in runs]
    return {
        "parts": list(parts),
        "repeat": repeat,
        "figures": figures,
        "detail": detail,
        "load_average_1min": {"min": min(loads), "max": max(loads)},
        "runs": runs,
    }


def only_table(result: dict[str, Any]) -> str:
    la = result["load_average_1min"]
    lines = [
        f"issue 13 figures, {result['repeat']} run(s) of {','.join(result['parts'])}; "
        f"1-min load average {la['min']:.2f}-{la['max']:.2f}",
        f"  {'figure':<22}{'median':>10}{'min':>10}{'max':>10}  {'target':<8} result",
    ]
    for key, f in result["figures"].items():
        lines.append(
            f"  {key:<22}{f['median']:>10.3g}{f['min']:>10.3g}{f['max']:>10.3g}  {f['target']:<8} "
            f"{'pass' if f['pass'] else 'MISS'}"
        )
    lines.append("  beside them (median [min-max])")
    for key, d in result["detail"].items():
        lines.append(f"  {key:<22}{d['median']:>10.4g}  [{d['min']:.4g}-{d['max']:.4g}]")
    return "\n".join(lines)


def table(result: dict[str, Any]) -> str:
    raw_ = result["raw"]
    lines = [
        f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"{result['machine']['memory_gb']} GB, {result['machine']['filesystem']}",
        "",
        "raw limits",
    ]
    g = raw_["lmdb_get_decode"]
    lines.append(
        f"  LMDB get+decode ({g['keys']} keys)   p50 {g['p50'] * 1e6:7.2f} us  p99 {g['p99'] * 1e6:7.2f} us"
    )
    for b, c in raw_["durable_commits"].items():
        lines.append(
            f"  durable commit, batch {b:>3}      p50 {c['p50'] * 1e3:7.3f} ms  p99 {c['p99'] * 1e3:7.3f} ms"
            f"  {c['sales_per_s']:8.0f} sale write sets/s"
        )
    h = raw_["thread_hop"]
    lines.append(f"  trio.to_thread.run_sync         p50 {h['p50'] * 1e6:7.1f} us")
    for n, e in raw_["echo"].items():
        lines.append(
            f"  ws echo {e['size']} B, {n:>2} clients      p50 {e['p50'] * 1e6:7.0f} us  p99 {e['p99'] * 1e6:7.0f} us"
            f"  {e['round_trips_per_s']:8.0f} round trips/s"
        )
    lines += [
        "",
        "hub (storehub run), load generator in its own process",
        f"  {'dataset':<26}{'regs':>5}{'sales/s':>9}{'sale p50':>10}{'scan p50':>10}{'scan p99':>10}"
        f"{'commit p99':>11}{'batch':>7}{'VmRSS':>7}{'RssAnon':>8}{'errors':>8}",
    ]
    for name in ("small", "large"):
        d = result["hub"][name]
        label = f"{d['packages'] // 1000}k pkgs, {d['history'] // 1000}k hist"
        for n, pt in d["points"].items():
            lines.append(
                f"  {label:<26}{n:>5}{pt['sales_per_s']:>9.1f}{pt['sale_p50_ms']:>8.1f}ms"
                f"{pt['scan_p50_ms']:>8.2f}ms{pt['scan_p99_ms']:>8.2f}ms{pt['commit_p99_ms']:>9.2f}ms"
                f"{pt['batch_mean']:>7.1f}{pt['rss_mb']:>7.0f}{pt['memory_mb']['RssAnon']:>8.0f}"
                f"{sum(pt['errors'].values()):>8}"
            )
        lk = d["lookup"]
        lines.append(
            f"  {label:<26} lookup p50: package+product {lk['package_product']['p50'] * 1e6:.1f} us, "
            f"allotment {lk['allotment']['p50'] * 1e6:.1f} us, together "
            f"{lk['package_plus_allotment']['p50'] * 1e6:.1f} us"
        )
    lines += ["", f"  {'ratio':<26}{'value':>10}  {'target':<8} result"]
    for key, r in result["ratios"].items():
        lines.append(f"  {key:<26}{r['value']:>10.3g}  {r['target']:<8} {'pass' if r['pass'] else 'MISS'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced run for CI (under a minute)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    ap.add_argument("--keep", action="store_true", help="keep the prepared stores and hub logs")
    ap.add_argument(
        "--profile", metavar="DIR", help="record py-spy (raw stacks) of the hub during each load point"
    )
    ap.add_argument(
        "--chain",
        action="store_true",
        help="HQ ingest from 50 simulated stores (needs nats-server, PostgreSQL)",
    )
    ap.add_argument(
        "--only",
        metavar="PARTS",
        help=f"run only these of {','.join(PARTS)} (comma-separated): the issue-13 figures in minutes",
    )
    ap.add_argument("--repeat", type=int, default=1, help="with --only: runs, reported as median and spread")
    ap.add_argument(
        "--seconds", type=float, help="with --only: length of each load point (default 10, quick 2.5)"
    )
    ap.add_argument("--profile-rate", type=int, default=PROFILE_RATE, help="py-spy samples per second")
    args = ap.parse_args(argv)
    if args.only:
        parts = tuple(x.strip() for x in args.only.split(",") if x.strip())
        unknown = set(parts) - set(PARTS)
        if unknown or not parts:
            ap.error(f"--only takes some of {','.join(PARTS)}, not {','.join(sorted(unknown)) or 'nothing'}")
        if args.repeat < 1:
            ap.error("--repeat must be at least 1")
        p = {**(QUICK if args.quick else FULL), "profile_rate": args.profile_rate}
        if args.seconds:
            p["seconds"] = args.seconds
        started = time.perf_counter()
        result = run_only(p, parts, args.repeat, args.keep, Path(args.profile) if args.profile else None)
        result.update(
            when=datetime.now(UTC).isoformat(timespec="seconds"),
            quick=args.quick,
            machine=machine(),
            elapsed_s=time.perf_counter() - started,
        )
        print(only_table(result))
        out = Path(args.out) if args.out != str(DEFAULT_OUT) else DEFAULT_OUT.with_name("hot-path.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str))
        log(f"wrote {out} ({result['elapsed_s']:.0f} s)")
        return 0
    if args.chain:
        from bench.chain import run_chain

        out = Path(args.out) if args.out != str(DEFAULT_OUT) else DEFAULT_OUT.with_name("chain.json")
        return run_chain(args.quick, out)
    p = QUICK if args.quick else FULL
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="storehub-bench-", dir=os.environ.get("BENCH_DATA_DIR")))
    ok = False
    try:
        raw_ = raw_limits(p)
        profile = Path(args.profile) if args.profile else None
        small = run_dataset("small", p["small"], p, work, profile)
        large = run_dataset("large", p["large"], p, work, profile)
        order_figures = bench_orders.run_orders(p["orders"], p, work, log)
        ok = True
    finally:
        if args.keep or not ok:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "profile": {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()},
        "raw": raw_,
        "hub": {"small": small, "large": large},
        "orders": order_figures,
    }
    result["ratios"] = ratios(raw_, small, large, p)
    result["ratios"].update(bench_orders.ratios(order_figures, raw_))
    result["elapsed_s"] = time.perf_counter() - started
    print(table(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    log(f"wrote {out} ({result['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
