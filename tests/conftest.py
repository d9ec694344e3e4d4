"""Shared fixtures: a real hub on loopback with dynamic ports and a fresh store per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import settings

from hub import wiring
from hub.app import Hub
from hub.config import StoreConfig, parse_config
from hub.demo import DEMO_PAIRING, DEMO_STAFF, seed_demo
from hub.wiring import Features

ROOT = Path(__file__).resolve().parent.parent

# Property tests check values, not speed: on a busy 2-core CI machine one example can take longer than
# hypothesis's 200 ms deadline, which fails the test (DeadlineExceeded, then Flaky) for no bug of ours.
settings.register_profile("storehub", deadline=None)
settings.load_profile("storehub")
OUTPUT = Path(os.environ.get("STOREHUB_TEST_OUTPUT", ROOT / "test-output"))

TEST_TOML = """
[store]
name = "Test Store"
licence = "C10-0000001-LIC"
jurisdiction = "CA"
time_zone = "America/Los_Angeles"

[server]
host = "127.0.0.1"
http_port = 0
ws_port = 0
heartbeat_seconds = 5
max_frame_bytes = 65536

[storage]
data_dir = "UNSET"
map_size_mb = 64

[[registers]]
id = "R1"
name = "Register 1"

[[registers]]
id = "R2"
name = "Register 2"

[[registers]]
id = "OFFICE"
name = "Back office"
"""

PINS = {s: p for s, _, _, p in DEMO_STAFF}


def make_config(data_dir: Path, extra: str = "") -> StoreConfig:
    cfg = parse_config(TEST_TOML + extra, source="test")
    cfg.storage.data_dir = str(data_dir)
    return cfg


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    d = OUTPUT / request.node.name.replace("/", "_")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def config(tmp_path: Path) -> StoreConfig:
    return make_config(tmp_path / "data")


@pytest.fixture
async def hub_factory(nursery: trio.Nursery) -> AsyncIterator[Callable[..., Any]]:
    hubs: list[Hub] = []

    async def start(config: StoreConfig, *, seed: bool = True, features: Features | None = None) -> Hub:
        async def setup(h: Hub) -> None:
            if seed:
                await trio.to_thread.run_sync(seed_demo, h.store, h.config)

        hub = wiring.build(config, features or Features())
        hub.services.setup.insert(0, setup)  # demo staff and pairing codes before any feature's setup
        await nursery.start(hub.run)
        hubs.append(hub)
        return hub

    yield start
    for h in hubs:
        h.stop()


@pytest.fixture
async def hub(hub_factory: Callable[..., Any], config: StoreConfig) -> Hub:
    return await hub_factory(config)


def ws_url(hub: Hub) -> str:
    return f"ws://127.0.0.1:{hub.ws_port}"


__all__ = ["DEMO_PAIRING", "PINS", "make_config", "ws_url"]
