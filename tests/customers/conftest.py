"""A hub with the sale, the back office, customers and the live catalogue installed, the demo catalogue
loaded, a fake card terminal, and (for the CRM) the bundled sandbox as the CRM's webhook on loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from hub.app import Hub
from hub.client import HubClient
from hub.domain.catalog import Package
from hub.domain.demo_catalogue import aamva_payload
from hub.store.env import decode
from hub.wiring import CustomersOptions, Features, SaleOptions
from sandbox.server import SandboxConfig, SandboxHandle, serve
from tests.backoffice.office_helpers import FakeTerminal
from tests.conftest import DEMO_PAIRING, PINS, make_config

FLOAT = {"B100": 5, "B20": 10, "B5": 10, "C25": 40}
CRM_SECRET = "test-crm-secret"


def licence(
    number: str = "C9911220033", *, given: str = "ALEXIS", family: str = "MORENO", age: int = 30
) -> str:
    """A California licence payload for a person the demo does not know."""
    today = date.today()
    return aamva_payload(
        jurisdiction="CA",
        number=number,
        family=family,
        given=given,
        middle="",
        birth=today.replace(year=today.year - age) - timedelta(days=40),
        expiry=today + timedelta(days=900),
        issued=today - timedelta(days=1000),
        sex="2",
        street="12 OAK ST",
        city="SACRAMENTO",
        postal="95814",
    )


# the sale with the demo catalogue, the back office, customers and the live catalogue
ALL = Features(sale=SaleOptions(demo=True), backoffice=True, customers=CustomersOptions(), catalogue=True)


@dataclass
class Shop:
    hub: Hub
    sandbox: SandboxHandle | None = None

    def rest(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.hub.http_port}",
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )

    def packages(self, product_prefix: str, n: int = 1, min_qty: int = 3) -> list[Package]:
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

    def audit(self, action: str) -> list[dict[str, Any]]:
        from hub.audit import AuditEntry

        with self.hub.store.read() as txn:
            entries = [decode(v, AuditEntry) for _, v in txn.cursor(db=self.hub.store.db("audit"))]
        return [{"staff": e.staff, "register": e.register, **e.detail} for e in entries if e.action == action]


async def _shop(hub_factory: Callable[..., Any], config: Any) -> Hub:
    config.server.demo = True
    hub = await hub_factory(config, features=ALL)
    terminal = FakeTerminal()
    for reg in ("R1", "R2"):
        hub.services.sale.terminals[f"demo-{reg}"] = terminal
        hub.services.sale.terminals[f"demo-payment-terminal-{reg}"] = terminal
    return hub


@pytest.fixture
async def shop(hub_factory: Callable[..., Any], tmp_path: Path) -> Shop:
    return Shop(hub=await _shop(hub_factory, make_config(tmp_path / "data")))


@pytest.fixture
async def crm_shop(nursery: trio.Nursery, hub_factory: Callable[..., Any], tmp_path: Path) -> Any:
    from hub.state_channel.feature import fast_retry_policy

    handle: SandboxHandle = await nursery.start(serve, SandboxConfig(data_dir=tmp_path / "sandbox"))
    handle.app.crm.secret = CRM_SECRET
    config = make_config(
        tmp_path / "data",
        f'\n[crm]\nurl = "{handle.url}/crm/generic"\nsecret = "{CRM_SECRET}"\ntimeout_seconds = 2\n',
    )
    config.server.demo = True

    features = dataclasses.replace(ALL, customers=CustomersOptions(crm_retry_policy=fast_retry_policy()))
    hub = await hub_factory(config, features=features)
    terminal = FakeTerminal()
    hub.services.sale.terminals["demo-payment-terminal-R1"] = terminal
    try:
        yield Shop(hub=hub, sandbox=handle)
    finally:
        handle.stop()


async def ready(c: HubClient, reg: str = "R1", staff: str = "maria", *, drawer: bool = True) -> str:
    await c.pair(DEMO_PAIRING[reg])
    await c.login(staff, PINS[staff])
    if drawer:
        witness = "maria" if staff != "maria" else "tom"
        await c.request("open_drawer", counted=FLOAT, witness=witness, witness_pin=PINS[witness])
    assert c.session_token
    return c.session_token


async def sell(c: HubClient, id_scan: str, tag: str, quantity: int = 1) -> dict[str, Any]:
    await c.request("scan", data=id_scan)
    await c.request("add_package", tag=tag, quantity=quantity)
    snap = await c.wait_snapshot(lambda s: s.get("cart") and s["cart"]["lines"])
    total = snap["state"]["cart"]["total_cents"]
    paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
    return {**paid, "total_cents": total}
