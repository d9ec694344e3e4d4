"""The chain's local servers start on a busy machine: a port another process takes first does not stop them,
and a restart listens where the first start did."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg

from hub.hq.localservers import NatsServer, Postgres
from tests.chain.conftest import CHAIN


def test_postgres_whose_port_is_taken_before_it_binds_starts_on_another() -> None:
    pg = Postgres(fsync=False)
    taken = pg.port
    try:
        with socket.create_server(("127.0.0.1", taken)):  # another process got there first
            pg.start()
        assert pg.port != taken
        with psycopg.connect(pg.dsn, connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.destroy()


def test_nats_server_picks_its_ports_then_restarts_on_them(tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "nats", CHAIN, ["north"])
    try:
        nats.start()
        first = (nats.port, nats.leaf_port)
        assert all(first) and nats.url == f"nats://127.0.0.1:{nats.port}"
        nats.stop()
        nats.start()  # the WAN comes back: the stores' leaf nodes dial the same port
        assert (nats.port, nats.leaf_port) == first
        for port in first:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
    finally:
        nats.stop()
