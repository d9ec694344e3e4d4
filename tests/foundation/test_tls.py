"""Optional TLS for both listeners: wss:// for the live protocol and https:// for pages and /healthz."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import trio

from hub.client import connect
from hub.config import StoreConfig


def self_signed(tmp: Path) -> tuple[Path, Path]:
    exe = shutil.which("openssl")
    assert exe, "openssl is needed to make a test certificate"
    cert, key = tmp / "hub.crt", tmp / "hub.key"
    subprocess.run(
        [
            exe,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_both_listeners_serve_tls(hub_factory, config: StoreConfig, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = self_signed(tmp_path)
    config.server.tls_cert, config.server.tls_key = str(cert), str(key)
    hub = await hub_factory(config)
    ctx = ssl.create_default_context(cafile=str(cert))
    with trio.fail_after(20):
        async with httpx.AsyncClient(verify=ctx) as http:
            r = await http.get(f"https://127.0.0.1:{hub.http_port}/healthz")
            assert r.status_code == 200
            assert (await http.get(f"https://127.0.0.1:{hub.http_port}/api/hub")).json()["ws_scheme"] == "wss"
        async with connect(f"wss://127.0.0.1:{hub.ws_port}", ssl_context=ctx) as c:
            assert "server_time" in await c.request("ping")
