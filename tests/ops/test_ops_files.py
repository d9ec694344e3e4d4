"""ops/: promtool accepts the Prometheus config and rules, and every storehub metric the alerts and the
Grafana dashboard use is exported by a running hub (demo store with devices and the state channel)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hub.app import Hub
from hub.config import StoreConfig

OPS = Path(__file__).resolve().parents[2] / "ops"
METRIC = re.compile(r"\b(storehub_[a-z0-9_]+)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: ops/test.sh installs Debian's prometheus package"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, cwd=OPS)


def test_promtool_accepts_config_and_rules() -> None:
    r = promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    r = promtool("check", "rules", "alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def used_metrics() -> set[str]:
    names: set[str] = set()
    rules = yaml.safe_load((OPS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            names.update(METRIC.findall(rule["expr"]))
    dash = json.loads((OPS / "grafana-dashboard.json").read_text())
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            names.update(METRIC.findall(target["expr"]))
    return names


def test_dashboard_is_importable_json() -> None:
    dash = json.loads((OPS / "grafana-dashboard.json").read_text())
    # row panels only group the panels below them; every other panel has its queries
    assert (
        dash["title"] and dash["panels"] and all(p["targets"] for p in dash["panels"] if p["type"] != "row")
    )
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("sales", "scan", "commit", "batch", "backlog", "devices", "actors", "connections"):
        assert topic in titles, topic


@pytest.fixture
async def full_demo_hub(hub_factory: Callable[..., Any], config: StoreConfig) -> Hub:
    from hub.wiring import DemoOptions, Features

    config.server.demo = True
    return await hub_factory(
        config,
        features=Features.store(DemoOptions(devices=True, sandbox=True, scale_protocol="ad")),
    )


async def test_every_metric_in_alerts_and_dashboard_is_exported(full_demo_hub: Hub) -> None:
    from hub.client import connect
    from hub.sale import inventory
    from tests.conftest import DEMO_PAIRING, PINS, ws_url

    hub = full_demo_hub
    demo = hub.services.demo.store
    pkg = next(
        p for p in inventory.packages_of(hub.store, "FLW-001") if p.status == "active" and p.quantity > 2
    )
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:  # one sale, so every sale-path metric has a sample
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            await c.request("open_drawer", counted={"B20": 5}, witness="tom", witness_pin=PINS["tom"])
            await c.request("scan", data=demo.customer("adult").id_scan)
            await c.request("scan", data=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            await c.request(
                "pay", tenders=[{"kind": "cash", "amount_cents": snap["state"]["cart"]["total_cents"]}]
            )
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{hub.http_port}/metrics")).text
    exported: set[str] = set()
    for family in text_string_to_metric_families(text):
        exported.add(family.name)
        exported.update(s.name for s in family.samples)
    # counters are exported as <name>_total; families as <name>; histograms add _bucket/_sum/_count
    missing = sorted(
        n for n in used_metrics() if n not in exported and n.removesuffix("_total") not in exported
    )
    assert not missing, f"used by ops/ but not exported: {missing}"
    sales = {
        s.labels["register"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "storehub_sales_total"
    }
    assert sales == {"R1": 1, "R2": 0}  # every register's series exists; the back office is not a register
    audit_events = {
        s.labels["action"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "storehub_audit_events_total"
    }
    assert audit_events["sale"] == 1 and audit_events["drawer_opened"] == 1 and audit_events["void"] == 0
    drawers = [
        s
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "storehub_drawers_open"
    ]
    assert [s.value for s in drawers] == [1]
    assert "storehub_device_up" in exported and "storehub_state_backlog" in exported
    assert {"storehub_crm_outbox_pending", "storehub_crm_outbox_oldest_pending_timestamp_seconds"} <= exported
