"""kill -9 during a stream of commits: every acknowledged write survives and the audit chain verifies."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from hub.client import ClientError, connect
from hub.store.env import Store, decode
from hub.store.keys import u64
from tests.conftest import TEST_TOML

CLI = [sys.executable, "-m", "hub.cli"]


def _cli(*args: str) -> str:
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


async def _start_hub(config: Path) -> tuple[trio.Process, int, int]:
    proc = await trio.lowlevel.open_process(
        [*CLI, "run", "--config", str(config), "--log-level", "WARNING"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    buf = b""
    try:
        with trio.fail_after(30):
            while b"Ctrl-C" not in buf:
                chunk = await proc.stderr.receive_some(4096)
                assert chunk, f"the hub exited while starting:\n{buf.decode()}"
                buf += chunk
    except BaseException:
        with trio.CancelScope(shield=True):
            proc.kill()
            await proc.wait()
            await proc.stderr.aclose()
        raise
    text = buf.decode()
    ws = int(re.search(r"Live protocol: ws://[^:]+:(\d+)", text).group(1))  # type: ignore[union-attr]
    http = int(re.search(r"Register:\s+http://[^:]+:(\d+)", text).group(1))  # type: ignore[union-attr]
    return proc, ws, http


async def test_sigkill_during_commits_loses_no_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "store.toml"
    config.write_text(TEST_TOML.replace('data_dir = "UNSET"', f'data_dir = "{data}"'))
    _cli(
        "staff",
        "add",
        "--create",  # a new store: a mistyped --data must not make one silently (issue 11)
        "--data",
        str(data),
        "--id",
        "maria",
        "--name",
        "Maria",
        "--role",
        "manager",
        "--pin",
        "3333",
    )
    code = re.search(r"R1: (\d+)", _cli("pairing-code", "--data", str(data), "--register", "R1")).group(1)  # type: ignore[union-attr]

    proc, ws_port, _ = await _start_hub(config)
    acked: dict[int, str] = {}
    try:
        async with connect(f"ws://127.0.0.1:{ws_port}") as c:
            await c.pair(code)
            await c.login("maria", "3333")

            async def writer(k: int) -> None:
                i = 0
                while True:
                    desc = f"writer {k} note {i}"
                    try:
                        res = await c.request("report_incident", category="test", description=desc)
                    except (ClientError, Exception):
                        return
                    acked[res["incident"]] = desc
                    i += 1

            with trio.fail_after(60):
                async with trio.open_nursery() as n:
                    for k in range(16):
                        n.start_soon(writer, k)
                    while len(acked) < 300:
                        await trio.sleep(0.01)
                    proc.send_signal(signal.SIGKILL)  # mid-stream: requests are in flight
                    await proc.wait()
                    await trio.sleep(0.2)
                    n.cancel_scope.cancel()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 300

    from actors.register import Incident

    store = Store(data)
    try:
        with store.env.begin() as txn:
            db = store.db("incidents")
            for seq, desc in acked.items():
                raw = txn.get(u64(seq), db=db)
                assert raw is not None, f"acknowledged incident {seq} lost"
                assert decode(raw, Incident).description == desc
    finally:
        store.close()
    out = _cli("audit", "verify", "--data", str(data))
    assert "chain intact" in out

    # and the hub starts again on the same data
    proc, _, http_port = await _start_hub(config)
    try:
        async with httpx.AsyncClient() as http:
            with trio.fail_after(20):
                r = await http.get(f"http://127.0.0.1:{http_port}/healthz")
                assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            await proc.wait()
        assert proc.returncode == 0, "SIGTERM must shut down cleanly"
    assert os.path.exists(data / "data.mdb")
