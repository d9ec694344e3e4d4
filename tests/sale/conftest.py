"""A running hub with the sale installed and the demo catalogue loaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hub.app import Hub
from hub.config import StoreConfig
from hub.wiring import Features, SaleOptions


@pytest.fixture
async def store_hub(hub_factory: Callable[..., Any], config: StoreConfig) -> Hub:

    config.server.demo = True
    return await hub_factory(config, features=Features(sale=SaleOptions(demo=True)))
