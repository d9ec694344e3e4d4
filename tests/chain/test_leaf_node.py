"""A store behind its own NATS leaf node (ops/nats/nats-leaf-store.conf's shape): the link talks to the
leaf on localhost; the leaf logs in to HQ's server as the store's user. The WAN (the leaf link) goes down:
the store sells on; it comes back: every event reaches HQ once."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import trio

from hub.hq.localservers import nats_listening
from hub.hq.natsconf import store_leaf_config
from tests.chain.conftest import CHAIN, hq_toml, make_nats, start_hq, start_store, store_hub
from tests.chain.helpers import adult_scan, audit_count, register, sell, tags, wait_for


class Leaf:
    def __init__(self, tmp: Path, store: str, password: str, hq_leaf_port: int) -> None:
        self.port = 0  # the leaf picks its port (-1) and names it in its log: known once started
        self.conf = tmp / f"leaf-{store}.conf"
        self.conf.write_text(
            store_leaf_config(
                CHAIN, store, password=password, hq_host="127.0.0.1", leaf_port=hq_leaf_port, port=-1
            )
        )
        self.log = tmp / f"leaf-{store}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, exe: str) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0  # this run's lines, not an earlier one's
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT)
        self.port = nats_listening(self.log, self.proc, 15, offset=offset)["client"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


async def test_a_store_behind_its_leaf_node_ships_through_a_wan_outage(tmp_path: Path, pg_dsn: str) -> None:
    nats = make_nats(tmp_path, ["north"])
    leaf = Leaf(tmp_path, "north", nats.passwords["north"], nats.leaf_port)
    leaf.start(nats.exe)
    s = store_hub(tmp_path, "north", nats)
    # the store's link talks to its own leaf node, without credentials (it listens on localhost only)
    s.chain_toml.write_text(
        s.chain_toml.read_text()
        .replace(f'nats_url = "{nats.url}"', f'nats_url = "nats://127.0.0.1:{leaf.port}"')
        .replace('user = "north"', 'user = ""')
    )
    hq = None
    try:
        hq = await start_hq(hq_toml(tmp_path, nats, pg_dsn, ["north"]))
        await start_store(s)
        with trio.fail_after(60):
            async with register(s.ws, s.data) as c:
                t = tags(s.data, 2)
                await sell(c, adult_scan(), t[0])
                async with hq.client() as http:

                    async def caught_up() -> bool:
                        rows = (await http.get("/api/stores")).json()
                        return bool(rows) and rows[0]["events"] == audit_count(s.data)

                    await wait_for(caught_up, 30, "events through the leaf node")
                    nats.stop()  # the WAN is down: the leaf loses HQ
                    await sell(c, adult_scan(), t[1])
                    await sell(c, adult_scan(), t[0])
                    nats.start()
                    await wait_for(caught_up, 60, "the backlog through the leaf node after the outage")
                    rows = (await http.get("/api/stores")).json()
        assert rows[0]["missing"] == 0 and rows[0]["events"] == audit_count(s.data)
    finally:
        if s.proc is not None:
            await s.proc.stop(signal.SIGKILL)
        if hq is not None:
            await hq.proc.stop(signal.SIGKILL)
        leaf.stop()
        nats.stop()
