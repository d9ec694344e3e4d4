"""Hot backup while the hub takes writes, then a restore as the README describes it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import trio

from hub.app import Hub
from hub.client import connect
from hub.store.env import Store
from tests.conftest import DEMO_PAIRING, PINS, ws_url


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=120
    )


async def test_hot_backup_then_restore(hub: Hub, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    acked: list[int] = []
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])

            async def writes() -> None:
                for i in range(200):
                    res = await c.request("report_incident", category="test", description=f"note {i}")
                    acked.append(res["incident"])

            async with trio.open_nursery() as n:
                n.start_soon(writes)
                while len(acked) < 50:
                    await trio.sleep(0.005)
                # the backup is taken while the hub is committing
                r = await trio.to_thread.run_sync(
                    cli, "backup", str(backup), "--data", hub.config.storage.data_dir
                )
                assert r.returncode == 0, r.stderr
                assert "backup written" in r.stdout
            at_backup = len(acked)
    assert (backup / "data.mdb").exists()
    # refuses to overwrite a backup
    assert cli("backup", str(backup), "--data", hub.config.storage.data_dir).returncode == 2

    # restore: a fresh data directory from the backup's data.mdb, then verify the chain
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(backup / "data.mdb", restored / "data.mdb")
    r = cli("audit", "verify", "--data", str(restored))
    assert r.returncode == 0, r.stdout + r.stderr
    store = Store(restored)
    try:
        n = store.count("incidents")
        # consistent: everything committed before the copy began, nothing half-written
        assert 50 <= n <= len(acked)
        assert store.count("staff") == 4
    finally:
        store.close()
    assert at_backup >= 50
