"""Real servers for the chain tests: nats-server (JetStream in a temp dir) and a temporary PostgreSQL
cluster, both on free ports; demo store hubs and HQ as the processes a user starts."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from hub.hq.auth import hash_password
from hub.hq.localservers import NatsServer, Postgres, what_is_missing
from tests.state.conftest import FLOAT

ROOT = Path(__file__).resolve().parents[2]
CHAIN = "green"
ADMIN_PW = "correct horse battery"
VIEWER_PW = "viewer only please"
ADMIN_HASH = hash_password(ADMIN_PW)
VIEWER_HASH = hash_password(VIEWER_PW)


def _require() -> None:
    missing = what_is_missing()
    # CI installs them (ops/test.sh); a missing server is a broken set-up, not a reason to skip
    assert not missing, f"the chain tests need {missing}: run ops/test.sh's installs"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    _require()
    pg = Postgres(fsync=False).start()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def pg_dsn(postgres: Postgres) -> str:
    """A fresh database per test in the session's cluster."""
    import psycopg

    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.dsn.replace("dbname=postgres", f"dbname={name}")


def make_nats(tmp: Path, stores: list[str], tls: tuple[str, str] | None = None) -> NatsServer:
    _require()
    return NatsServer(tmp / "nats", CHAIN, stores, tls=tls).start()


@dataclass
class Proc:
    proc: trio.Process
    text: str

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            with trio.fail_after(20):
                await self.proc.wait()


async def _start(cmd: list[str], ready: str, log: Path, timeout: float = 60) -> Proc:
    """Start ``cmd`` with its stderr appended to ``log`` (kept for a failing test), wait for ``ready``."""
    offset = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        proc = await trio.lowlevel.open_process(
            cmd, cwd=ROOT, stderr=out, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    text = ""
    try:
        with trio.fail_after(timeout):
            while ready not in text:
                assert proc.returncode is None and proc.poll() is None, (
                    f"{cmd[3:5]} exited while starting:\n{text}"
                )
                await trio.sleep(0.05)
                with open(log, "rb") as f:
                    f.seek(offset)
                    text = f.read().decode(errors="replace")
    except BaseException:
        with trio.CancelScope(shield=True):
            proc.kill()
            await proc.wait()
        raise
    return Proc(proc, text)


def hq_toml(
    tmp: Path, nats: NatsServer, dsn: str, stores: list[str], *, ack_wait: float = 2.0, batch: int = 200,
    tls: tuple[str, str] | None = None,
) -> Path:  # fmt: skip
    path = tmp / "hq.toml"
    store_lines = "\n".join(
        f'[[stores]]\nid = "{s}"\nname = "Store {s}"\ntime_zone = "America/Los_Angeles"\n' for s in stores
    )
    path.write_text(
        f"""
[hq]
chain = "{CHAIN}"
name = "Green Chain HQ"

[http]
host = "127.0.0.1"
port = 0
tls_cert = "{tls[0] if tls else ""}"
tls_key = "{tls[1] if tls else ""}"

[nats]
url = "{nats.url}"
user = "hq"
password = "{nats.hq_password}"
tls_ca = "{tls[0] if tls else ""}"

[postgres]
dsn = "{dsn}"

[ingest]
batch = {batch}
ack_wait_seconds = {ack_wait}

{store_lines}
[[staff]]
user = "boss"
name = "Chain Admin"
role = "admin"
password_hash = "{ADMIN_HASH}"

[[staff]]
user = "look"
role = "viewer"
password_hash = "{VIEWER_HASH}"
"""
    )
    return path


@dataclass
class Hq:
    proc: Proc
    port: int

    scheme: str = "http"
    verify: Any = True

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def client(self, user: str = "boss", password: str = ADMIN_PW) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, auth=(user, password), timeout=10, verify=self.verify)


async def start_hq(config: Path, verify: Any = True) -> Hq:
    p = await _start(
        [sys.executable, "-m", "hub.cli", "hq", "run", "--config", str(config), "--log-level", "WARNING"],
        "Ctrl-C",
        config.parent / "hq.log",
    )
    m = re.search(r"Pages and API: (https?)://[^:]+:(\d+)/", p.text)
    assert m, p.text
    return Hq(p, int(m.group(2)), m.group(1), verify)


@dataclass
class StoreHub:
    store_id: str
    data: Path
    chain_toml: Path
    proc: Proc | None = None
    ws: int = 0
    http: int = 0


def store_hub(tmp: Path, store_id: str, nats: NatsServer, **extra: Any) -> StoreHub:
    toml = tmp / f"chain-{store_id}.toml"
    lines = [
        "[chain]",
        f'chain = "{CHAIN}"',
        f'store_id = "{store_id}"',
        f'nats_url = "{nats.url}"',
        f'user = "{store_id}"',
        f'password = "{nats.passwords[store_id]}"',
        "poll_seconds = 0.1",
        "catalogue_poll_seconds = 0.5",
        "status_seconds = 1.0",
    ] + [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in extra.items()]
    toml.write_text("\n".join(lines) + "\n")
    return StoreHub(store_id, tmp / f"store-{store_id}", toml)


async def start_store(s: StoreHub) -> StoreHub:
    cmd = [
        sys.executable, "-m", "hub.cli", "demo", "--data", str(s.data), "--http-port", "0",
        "--ws-port", "0", "--no-devices", "--no-sandbox", "--log-level", "WARNING", "--chain-toml", str(s.chain_toml),
    ]  # fmt: skip
    s.proc = await _start(cmd, "Ctrl-C to stop", s.data.parent / f"store-{s.store_id}.log")
    s.ws = int(re.search(r"Live protocol: ws://[^:]+:(\d+)", s.proc.text).group(1))  # type: ignore[union-attr]
    s.http = int(re.search(r"Register:\s+http://[^:]+:(\d+)", s.proc.text).group(1))  # type: ignore[union-attr]
    return s


__all__ = ["FLOAT", "CHAIN", "ADMIN_PW", "VIEWER_PW"]
