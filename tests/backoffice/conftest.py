"""A running hub with the sale and the back office installed, the demo catalogue loaded, and a fake
payment terminal on R1 and R2 (the interface the sale charges through)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hub.app import Hub
from hub.config import StoreConfig
from hub.wiring import Features, SaleOptions
from tests.backoffice.office_helpers import FakeTerminal


@pytest.fixture
async def office_hub(hub_factory: Callable[..., Any], config: StoreConfig) -> Hub:
    config.server.demo = True
    hub = await hub_factory(config, features=Features(sale=SaleOptions(demo=True), backoffice=True))
    terminal = FakeTerminal()
    for reg in ("R1", "R2"):
        # the key the sale looks the register's terminal up by (older sale code: "demo-<register>")
        hub.services.sale.terminals[f"demo-{reg}"] = terminal
        hub.services.sale.terminals[f"demo-payment-terminal-{reg}"] = terminal
    hub.services.sale.terminals["demo-R1"] = terminal
    return hub
