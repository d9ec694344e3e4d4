"""A real Prometheus (Debian's `prometheus`) scraping a real hub, with ops/alerts.yml loaded.

Time is scaled so the suite stays short: Prometheus scrapes and evaluates every second, and the test's copy
of alerts.yml divides every `for:` and every range window by 60 (``for: 5m`` becomes ``for: 5s``,
``[10m]`` becomes ``[10s]``), so "a minute" of the rules is a second here. Thresholds on real times (the
state's reporting deadline, 26 h for a backup, a day for a cash flag) are not scaled: the deadline test
shortens the jurisdiction's deadline itself instead.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from hub import wiring
from hub.app import Hub
from hub.client import connect
from hub.config import StoreConfig
from hub.state_channel import policy
from tests.conftest import DEMO_PAIRING, make_config, ws_url
from tests.state.conftest import World, ready, sell, world  # noqa: F401  (world: the state channel fixture)

OPS = Path(__file__).resolve().parents[2] / "ops"
SCALE = 60
STORE = "test-store"


# Prometheus on port 0 takes the port the system gives it and names it in this (info) line of its log
LISTENING = re.compile(r'msg="Listening on" address=127\.0\.0\.1:(\d+)')


def scaled_rules() -> str:
    """ops/alerts.yml with every `for:` and range window divided by SCALE (see the module docstring)."""

    def scale(m: re.Match[str]) -> str:
        n, unit = int(m.group(2)), m.group(3)
        seconds = n * {"s": 1, "m": 60, "h": 3600}[unit]
        return f"{m.group(1)}{max(1, seconds // SCALE)}s{m.group(4)}"

    text = (OPS / "alerts.yml").read_text()
    text = re.sub(r"(for: )(\d+)([smh])()", scale, text)
    return re.sub(r"(\[)(\d+)([smh])(\])", scale, text)


class Prometheus:
    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.http = http

    async def alerts(self) -> list[dict[str, Any]]:
        r = await self.http.get(f"{self.url}/api/v1/alerts")
        return r.json()["data"]["alerts"]  # type: ignore[no-any-return]

    async def firing(self, name: str | None = None) -> list[dict[str, str]]:
        return [
            a["labels"]
            for a in await self.alerts()
            if a["state"] == "firing" and (name is None or a["labels"]["alertname"] == name)
        ]

    async def wait_firing(self, name: str, timeout: float, **labels: str) -> dict[str, str]:
        with trio.fail_after(timeout):
            while True:
                for alert in await self.firing(name):
                    if all(alert.get(k) == v for k, v in labels.items()):
                        return alert
                await trio.sleep(0.25)

    async def query(self, expr: str) -> list[dict[str, Any]]:
        r = await self.http.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = r.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]  # type: ignore[no-any-return]

    async def wait_scraped(self, expr: str, timeout: float = 20) -> None:
        with trio.fail_after(timeout):
            while not await self.query(expr):
                await trio.sleep(0.25)


@asynccontextmanager
async def prometheus(tmp_path: Path, hub_port: int) -> AsyncIterator[Prometheus]:
    exe = shutil.which("prometheus")
    assert exe, "prometheus is missing: ops/test.sh installs Debian's prometheus package"
    d = tmp_path / "prometheus"
    d.mkdir()
    (d / "alerts.yml").write_text(scaled_rules())
    (d / "prometheus.yml").write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["alerts.yml"],
                "scrape_configs": [
                    {
                        "job_name": "storehub",
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{hub_port}"], "labels": {"store": STORE}}
                        ],
                    }
                ],
            }
        )
    )
    log_path = d / "prometheus.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'data'}",
            "--web.listen-address=127.0.0.1:0",  # a port picked beforehand may be taken before it binds
            "--log.level=info",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            with trio.fail_after(30):
                while not (listening := LISTENING.search(log_path.read_text())):
                    assert proc.poll() is None, log_path.read_text()
                    await trio.sleep(0.1)
                url = f"http://127.0.0.1:{listening.group(1)}"
                while True:
                    try:
                        if (await http.get(f"{url}/-/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert proc.poll() is None, log_path.read_text()
                    await trio.sleep(0.2)
            yield Prometheus(url, http)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@asynccontextmanager
async def demo_hub(config: StoreConfig) -> AsyncIterator[Hub]:
    """The demo store (devices on pseudo-terminals, the state sandbox) until the block ends, then stopped."""
    hub = wiring.build(
        config, wiring.Features.store(wiring.DemoOptions(devices=True, sandbox=True, scale_protocol="ad"))
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        try:
            yield hub
        finally:
            hub.stop()


def demo_config(tmp_path: Path) -> StoreConfig:
    config = make_config(tmp_path / "data")  # HTTP and WebSocket on port 0: the hub reports what it bound
    config.server.demo = True
    config.store.opening_hours = "00:00-24:00"  # open now, whatever the hour: every guard is armed
    return config


def dashboard_queries() -> list[str]:
    dash = json.loads((OPS / "grafana-dashboard.json").read_text())
    return [
        t["expr"].replace("$store", STORE).replace("$instance", ".*")
        for p in dash["panels"]
        for t in p.get("targets", [])
    ]


async def test_idle_healthy_demo_fires_nothing_and_every_panel_has_data(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with demo_hub(demo_config(tmp_path)) as hub, prometheus(tmp_path, hub.http_port) as prom:
            clients = []
            async with connect(ws_url(hub)) as r1, connect(ws_url(hub)) as r2:
                for c, reg in ((r1, "R1"), (r2, "R2")):
                    await c.pair(DEMO_PAIRING[reg])
                    clients.append(c)
                await prom.wait_scraped('storehub_register_connected{register="R2"} == 1')
                # the longest scaled `for:` is 10 s and the longest window 60 s of which 15 s are seen:
                # any alert an idle store would raise has to appear within this quarter minute
                with trio.move_on_after(15):
                    while True:
                        assert await prom.firing() == [], "an idle, healthy store pages nobody"
                        await trio.sleep(0.5)
                pending = [a["labels"] for a in await prom.alerts()]
                assert pending == [], "nothing is on its way to firing either"
                for expr in dashboard_queries():
                    assert await prom.query(expr), f"dashboard query without data on a fresh hub: {expr}"


async def test_register_absent_after_restart_and_first_crash_loop_fire(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    with trio.fail_after(100):
        async with demo_hub(config) as hub, connect(ws_url(hub)) as r1, connect(ws_url(hub)) as r2:
            await r1.pair(DEMO_PAIRING["R1"])
            await r2.pair(DEMO_PAIRING["R2"])
        # restarted (an upgrade): only R1's browser comes back, the back office stays closed
        async with demo_hub(config) as hub, prometheus(tmp_path, hub.http_port) as prom:
            async with connect(ws_url(hub)) as r1:
                await r1.pair(DEMO_PAIRING["R1"])
                alert = await prom.wait_firing("RegisterDisconnected", 30, register="R2")
                assert alert["store"] == STORE and alert["severity"] == "warning"
                assert {a["register"] for a in await prom.firing("RegisterDisconnected")} == {"R2"}

                # the first crash loop after the start: register R2's actor crashes on two poison messages
                # (each crashes it twice, then is quarantined): 4 restarts from a series that was at 0
                await prom.wait_scraped('storehub_actor_restarts_total{actor="register:R2"} == 0')
                assert await prom.firing("ActorRestarting") == []
                mailbox = hub.registers["R2"].mailbox
                for _ in range(2):
                    with pytest.raises(Exception, match="set aside"):
                        await mailbox.call(object(), timeout=10)
                alert = await prom.wait_firing("ActorRestarting", 30, actor="register:R2")
                assert alert["store"] == STORE
                assert await prom.firing("ActorDown") == []  # restarted each time, never parked


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> timedelta:
    """The state world's jurisdiction (CA) with a 30 s reporting deadline instead of 24 h, set before the
    hub starts (a sync fixture runs before the async ones)."""
    deadline = timedelta(seconds=30)
    monkeypatch.setitem(
        policy.POLICIES, "CA", msgspec.structs.replace(policy.POLICIES["CA"], deadline=deadline)
    )
    return deadline


async def test_state_outage_fires_the_backlog_alert_by_the_deadline_then_resolves(
    short_deadline: timedelta,
    world: World,  # noqa: F811  (the fixture imported from tests/state/conftest.py)
    tmp_path: Path,
) -> None:
    w = world
    licence = w.hub.config.store.licence
    with trio.fail_after(90):
        async with prometheus(tmp_path, w.hub.http_port) as prom:
            await prom.wait_scraped(f'storehub_state_reporting_deadline_seconds{{licence="{licence}"}} == 30')
            await w.admin.set_faults(outage=True)
            tags = [p.tag for p in w.unit_packages("PRE-", 3, min_qty=5)]
            async with connect(ws_url(w.hub)) as c:
                await ready(c)
                t0 = trio.current_time()
                await sell(c, w.demo.customer("adult").id_scan, tags[0])
            assert not await prom.firing("StateSyncBacklogStale")  # a fresh entry is not yet at risk
            alert = await prom.wait_firing("StateSyncBacklogStale", 45, licence=licence)
            fired_after = trio.current_time() - t0
            assert fired_after < short_deadline.total_seconds(), "it must fire before the deadline passes"
            assert fired_after >= short_deadline.total_seconds() / 2 - 1, "not before half the time is gone"
            assert alert["store"] == STORE and alert["severity"] == "warning"
            assert await prom.firing("StateReportingOverdue") == []
            assert await prom.firing("StateSyncDeadLetter") == []

            await w.admin.set_faults(outage=False)
            await w.wait_drained(15)
            with trio.fail_after(15):
                while await prom.firing("StateSyncBacklogStale"):
                    await trio.sleep(0.25)
            assert await prom.firing("StateReportingOverdue") == []
            sent = await prom.query(f'storehub_state_last_sent_timestamp_seconds{{licence="{licence}"}} > 0')
            assert sent, "the hub reports when the state last accepted an entry"


def test_scaled_rules_shorten_every_duration() -> None:
    text = scaled_rules()
    assert "for: 5s" in text and "[10s]" in text and "[60s]" in text
    assert not re.search(r"for: \d+m|\[\d+[mh]\]", text)
