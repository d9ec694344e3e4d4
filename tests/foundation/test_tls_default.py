"""TLS by default outside the demo (issue 11): `storehub run` refuses plain ws:// and http:// on an address
other than loopback unless the configuration says `tls = "off"`; `storehub tls init` makes a store CA and a
server certificate a register that trusts the CA connects to."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from hub.client import connect
from hub.config import ConfigError, StoreConfig, check_tls, parse_config
from tests.conftest import TEST_TOML

CLI = [sys.executable, "-m", "hub.cli"]


def _toml(tmp: Path, server_extra: str = "", host: str = "0.0.0.0") -> Path:
    text = TEST_TOML.replace('host = "127.0.0.1"', f'host = "{host}"' + server_extra).replace(
        'data_dir = "UNSET"', f'data_dir = "{tmp / "data"}"'
    )
    p = tmp / "store.toml"
    p.write_text(text)
    return p


def test_run_refuses_plain_listeners_on_the_lan(tmp_path: Path) -> None:
    cfg = _toml(tmp_path)
    r = subprocess.run([*CLI, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "configuration refused: server.tls" in r.stderr and "storehub tls init" in r.stderr
    assert not (tmp_path / "data" / "data.mdb").exists()  # refused before the store was opened


def test_tls_off_loopback_and_certificates_pass_the_check(tmp_path: Path) -> None:
    def cfg(extra: str, host: str = "0.0.0.0") -> StoreConfig:
        return parse_config(_toml(tmp_path, extra, host).read_text())

    check_tls(cfg('\ntls = "off"'))
    check_tls(cfg("", host="127.0.0.1"))
    check_tls(cfg("", host="::1"))
    check_tls(cfg('\ntls_cert = "a.crt"\ntls_key = "a.key"'))
    with pytest.raises(ConfigError, match="server.tls"):
        check_tls(cfg("", host="192.0.2.10"))
    with pytest.raises(ConfigError, match="server.tls"):
        check_tls(cfg('\ntls = "required"', host="hub.store.lan"))


async def test_tls_init_makes_a_certificate_registers_can_trust(
    hub_factory: Callable[..., Any], config: StoreConfig, tmp_path: Path
) -> None:
    store_toml = _toml(tmp_path, host="127.0.0.1")
    r = await trio.to_thread.run_sync(
        lambda: subprocess.run(
            [*CLI, "tls", "init", "--config", str(store_toml), "--name", "hub.store.lan"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    )
    assert r.returncode == 0, r.stderr
    tls = tmp_path / "tls"
    assert f'tls_cert = "{tls / "store.crt"}"' in r.stdout
    for key in ("ca.key", "store.key"):
        assert stat.S_IMODE(os.stat(tls / key).st_mode) == 0o600
    config.server.tls_cert, config.server.tls_key = str(tls / "store.crt"), str(tls / "store.key")
    hub = await hub_factory(config)
    # a register trusts the store's CA (not the server certificate itself) and checks the name
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    with trio.fail_after(20):
        async with httpx.AsyncClient(verify=ctx) as http:
            assert (await http.get(f"https://127.0.0.1:{hub.http_port}/healthz")).status_code == 200
        async with connect(f"wss://127.0.0.1:{hub.ws_port}", ssl_context=ctx) as c:
            assert "server_time" in await c.request("ping")
    again = await trio.to_thread.run_sync(
        lambda: subprocess.run(
            [*CLI, "tls", "init", "--config", str(store_toml)], capture_output=True, text=True, timeout=60
        )
    )
    assert again.returncode == 2 and "--force" in again.stderr
