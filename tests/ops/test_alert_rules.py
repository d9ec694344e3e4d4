"""ops/alerts.yml as an on-call person relies on it: promtool unit tests for every alert (fires, does not
fire, resolves), the store label kept by every aggregation, annotations and a runbook page per alert, and a
fresh hub's /metrics clean under `promtool check metrics`, with every series the alerts read present at 0."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hub.app import Hub
from hub.config import StoreConfig

OPS = Path(__file__).resolve().parents[2] / "ops"
RUNBOOK_QUESTIONS = ("what it means", "what to check", "what to do", "when to call the state")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: ops/test.sh installs Debian's prometheus package"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, cwd=OPS, input=stdin)


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((OPS / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_unit_tests_pass() -> None:
    r = promtool("test", "rules", "alerts.test.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_alert_is_unit_tested_to_fire_not_fire_and_resolve() -> None:
    doc = yaml.safe_load((OPS / "alerts.test.yml").read_text())
    seen: dict[str, set[str]] = {}
    for case in doc["tests"]:
        firing: dict[str, list[int]] = {}
        quiet: dict[str, list[int]] = {}
        for check in case["alert_rule_test"]:
            t = _seconds(check["eval_time"])
            (firing if check["exp_alerts"] else quiet).setdefault(check["alertname"], []).append(t)
            for exp in check["exp_alerts"]:
                assert set(exp["exp_annotations"]) == {"summary", "description", "runbook_url"}
        for name in set(firing) | set(quiet):
            got = seen.setdefault(name, set())
            if firing.get(name):
                got.add("fires")
            if quiet.get(name):
                got.add("does not fire")
            if firing.get(name) and any(q > min(firing[name]) for q in quiet.get(name, [])):
                got.add("resolves")
    for rule in alert_rules():
        assert seen.get(rule["alert"]) == {"fires", "does not fire", "resolves"}, rule["alert"]


def _seconds(duration: str) -> int:
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", duration))


def test_alerts_keep_the_store_label_and_point_at_a_runbook() -> None:
    for rule in alert_rules():
        name, expr = rule["alert"], rule["expr"]
        # every aggregation and every match keeps store and instance (HubDown keeps all of up's labels)
        for clause in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
            labels = {part.strip() for part in clause.split(",")}
            assert {"store", "instance"} <= labels, f"{name}: `{clause}` drops the store"
        if name != "HubDown":
            assert re.search(r"\bby\s*\(", expr), f"{name} must aggregate by (store, instance, ...)"
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        url = notes["runbook_url"]
        path, _, anchor = url.partition("/ops/runbooks/")[2].partition("#")
        page = OPS / "runbooks" / path
        assert page.is_file(), f"{name}: {url} names no page in ops/runbooks"
        text = page.read_text().lower()
        if anchor:
            headings = {
                re.sub(r"[^a-z0-9 -]", "", h.strip()).replace(" ", "-")
                for h in re.findall(r"^#+ (.*)$", text, re.M)
            }
            assert anchor in headings, f"{name}: no heading #{anchor} in {page.name}"
            section = text.split(f"\n## {anchor}\n", 1)[1].split("\n## ", 1)[0]
        else:
            section = text
        for question in RUNBOOK_QUESTIONS:
            assert f"# {question}" in section, f"{name}: {page.name} does not answer '{question}'"
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_opening_hours_come_from_the_hub_not_utc_hours() -> None:
    for rule in alert_rules():
        assert "hour()" not in rule["expr"], rule["alert"]
    assert (
        "storehub_store_open"
        in next(r for r in alert_rules() if r["alert"] == "RegisterDisconnected")["expr"]
    )


@pytest.fixture
async def fresh_demo_hub(hub_factory: Callable[..., Any], config: StoreConfig) -> Hub:
    from hub.wiring import DemoOptions, Features

    config.server.demo = True
    return await hub_factory(
        config,
        features=Features.store(DemoOptions(devices=True, sandbox=True, scale_protocol="ad")),
    )


async def test_fresh_hub_metrics_pass_promtool_and_start_at_zero(fresh_demo_hub: Hub) -> None:
    hub = fresh_demo_hub
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{hub.http_port}/metrics")).text
    r = promtool("check", "metrics", stdin=text)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr

    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    names = {s.name for s in samples}
    assert not [n for n in names if n.endswith("_created")]
    assert "process_resident_memory_bytes" in names and "process_start_time_seconds" in names
    build = [s for s in samples if s.name == "storehub_build_info"]
    assert len(build) == 1 and build[0].labels["version"] and build[0].value == 1

    def series(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for s in samples if s.name == name}

    # nothing has happened yet: every series an alert or panel reads is there, at 0
    actors = {dict(k)["actor"]: v for k, v in series("storehub_actor_restarts_total").items()}
    assert {"store-writer", "register:R1", "register:R2", "register:OFFICE"} <= set(actors)
    assert any(a.startswith("state-sync:") for a in actors) and any(a.startswith("device:") for a in actors)
    assert set(actors.values()) == {0.0}
    assert set(series("storehub_actor_parked").values()) == {0.0}
    assert {dict(k)["actor"] for k in series("storehub_quarantined_messages_total")} >= {"register:R1"}
    connected = {dict(k)["register"]: v for k, v in series("storehub_register_connected").items()}
    assert connected == {"R1": 0.0, "R2": 0.0}  # configured registers; the back office is not one
    assert {dict(k)["result"] for k in series("storehub_logins_total")} == {"ok", "failed", "locked"}
    licence = hub.config.store.licence
    assert series("storehub_state_backlog") == {(("licence", licence),): 0.0}
    assert series("storehub_state_reporting_deadline_seconds") == {(("licence", licence),): 86400.0}  # CA
    assert {dict(k)["kind"] for k in series("storehub_state_errors_total")} >= {"unavailable", "auth"}
    for name in (
        "storehub_state_oldest_unsent_timestamp_seconds",
        "storehub_state_next_deadline_timestamp_seconds",
    ):
        assert series(name) == {(("licence", licence),): 0.0}, name
    assert {dict(k)["action"] for k in series("storehub_audit_events_total")} >= {"void", "return", "lockout"}
    assert series("storehub_card_reversals_failed_total") == {(): 0.0}
    assert series("storehub_card_reversals_pending") == {(): 0.0}
    # the state client's timeout (10 s) sits inside the buckets, not in +Inf
    les = {float(dict(k)["le"]) for k in series("storehub_state_send_seconds_bucket")}
    assert max(le for le in les if le != float("inf")) > hub.config.state_system.timeout_seconds

    # device kinds are the configured ones, the same on every device series (the demo's label printer)
    kinds = {
        (dict(k)["device"], dict(k)["kind"])
        for name in (
            "storehub_device_up",
            "storehub_device_errors_total",
            "storehub_device_last_reading_timestamp_seconds",
        )
        for k in series(name)
    }
    devices = hub.services.devices.kinds if hub.services.devices is not None else {}
    assert kinds and all(devices.get(d, k) == k for d, k in kinds)
    assert "label_printer" in {k for _, k in kinds} and len({d for d, _ in kinds}) == len(kinds)
