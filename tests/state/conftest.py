"""A hub with the sale and the state channel, talking Metrc v2 to a real sandbox over loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from hub.app import Hub
from hub.client import HubClient, connect
from hub.domain.catalog import Package
from hub.domain.demo_catalogue import DemoStore
from hub.domain.outbox import OutboxEntry
from hub.sale import inventory
from hub.store.env import decode
from hub.wiring import Features, SaleOptions
from sandbox import demo as sbx
from sandbox.server import SandboxConfig, SandboxHandle, serve
from sandbox.testing import SandboxAdmin
from tests.conftest import DEMO_PAIRING, PINS, make_config, ws_url

FLOAT = {"B100": 5, "B20": 10, "B5": 10, "C25": 40}  # $760.00: change for a $500 note


def state_toml(url: str) -> str:
    return f"""
[state_system]
kind = "metrc"
base_url = "{url}"
license_number = "{sbx.METRC_LICENSE}"
vendor_key = "{sbx.METRC_VENDOR_KEY}"
user_key = "{sbx.METRC_USER_KEY}"
timeout_seconds = 3
"""


@dataclass
class World:
    hub: Hub
    sandbox: SandboxHandle
    admin: SandboxAdmin

    @property
    def demo(self) -> DemoStore:
        return self.hub.services.demo.store  # type: ignore[no-any-return]

    def outbox(self) -> list[OutboxEntry]:
        with self.hub.store.read() as txn:
            return [decode(v, OutboxEntry) for _, v in txn.cursor(db=self.hub.store.db("outbox"))]

    def unit_packages(self, product_prefix: str, n: int, min_qty: int = 3) -> list[Package]:
        out = []
        with self.hub.store.read() as txn:
            for _, raw in txn.cursor(db=self.hub.store.db("packages")):
                p = decode(raw, Package)
                if (
                    p.product_id.startswith(product_prefix)
                    and p.status == "active"
                    and p.lab_testing in ("passed", "retest_passed")
                    and p.quantity >= min_qty
                    and (p.expires_on is None or p.expires_on > datetime.now(UTC).date())
                ):
                    out.append(p)
        return out[:n]

    async def receipts(self) -> list[dict[str, Any]]:
        return (await self.admin.state())["receipts"]  # type: ignore[no-any-return]

    async def wait_drained(self, timeout: float = 15) -> None:
        with trio.fail_after(timeout):
            while any(e.state != "sent" for e in self.outbox()):
                await trio.sleep(0.05)

    def rest(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.hub.http_port}",
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )


@pytest.fixture
async def world(
    nursery: trio.Nursery, tmp_path: Path, hub_factory: Callable[..., Any], request: pytest.FixtureRequest
) -> Any:
    """A hub and a sandbox; parametrize ``world`` indirectly with "pascal" (Metrc's documented keys, the
    default) or "camel" (as some states answer) to choose how the sandbox answers."""
    from hub.state_channel import feature as state_channel
    from hub.state_channel.demo import align_sandbox

    casing = getattr(request, "param", "pascal")
    # how often the channel looks at its outbox unwoken; a test module may say otherwise
    poll_seconds = getattr(request.module, "STATE_POLL_SECONDS", 0.2)
    # pulls on their own timer every this many seconds; None: a test pulls when it wants
    pull_every = getattr(request.module, "STATE_PULL_EVERY", None)
    handle: SandboxHandle = await nursery.start(
        serve, SandboxConfig(data_dir=tmp_path / "sandbox", seed="demo", casing=casing)
    )
    config = make_config(tmp_path / "data", state_toml(handle.url))
    config.server.demo = True

    features = Features(
        sale=SaleOptions(demo=True),
        backoffice=True,  # returns
        state_channel=state_channel.ChannelOptions(
            retry_policy=state_channel.fast_retry_policy(),
            poll_seconds=poll_seconds,
            schedule=pull_every is not None,
            pull_every=pull_every or 300.0,
        ),
    )
    hub = await hub_factory(config, features=features)
    await align_sandbox(hub, handle.url, sbx.METRC_LICENSE)
    admin = SandboxAdmin(handle.url)
    try:
        yield World(hub=hub, sandbox=handle, admin=admin)
    finally:
        await admin.aclose()
        handle.stop()


async def ready(c: HubClient, reg: str = "R1", staff: str = "maria", *, drawer: bool = True) -> str:
    """Pair, log in and open the drawer; returns the session token (a bearer token for REST)."""
    await c.pair(DEMO_PAIRING[reg])
    await c.login(staff, PINS[staff])
    if drawer:
        await c.request("open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])
    assert c.session_token
    return c.session_token


async def sell(c: HubClient, id_scan: str, tag: str, quantity: int = 1) -> dict[str, Any]:
    await c.request("scan", data=id_scan)
    await c.request("add_package", tag=tag, quantity=quantity)
    return await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 500_00}])  # type: ignore[no-any-return]


__all__ = ["World", "connect", "inventory", "ready", "sell", "ws_url"]
