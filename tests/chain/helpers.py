"""Selling at a demo store and reading its own Z report, for the chain tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import trio

from hub.backoffice.records import day_reports
from hub.client import HubClient, connect
from hub.domain.demo_catalogue import build_demo_store
from hub.store.env import Store
from tests.conftest import PINS
from tests.state.conftest import ready
from tests.state.test_state_crash_recovery import pre_roll_tags

ZONE = "America/Los_Angeles"
Z_FIELDS = (
    "sales_count", "gross_cents", "discounts_cents", "pretax_cents", "tax_cents", "total_cents",
    "tendered_cents", "change_cents", "voids_count", "voids_cents", "returns_count", "returns_cents",
)  # fmt: skip


def today() -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(ZONE)).date()


def adult_scan() -> str:
    return (
        build_demo_store(today(), home_jurisdiction="CA", id_hasher=lambda j, n: n).customer("adult").id_scan
    )


def tags(data: Path, n: int = 3) -> list[str]:
    out = pre_roll_tags(data, n)
    assert out, "the demo store has no pre-roll packages to sell"
    return out


async def sell(c: HubClient, id_scan: str, tag: str) -> dict[str, Any]:
    await c.request("scan", data=id_scan)
    await c.request("add_package", tag=tag)
    return await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 200_00}])  # type: ignore[no-any-return]


def store_z(data: Path, day: date | None = None) -> dict[str, int]:
    """The store's own Z report (store scope), read from its LMDB like `storehub report eod`."""
    store = Store(data, readonly=True, map_size=256 << 20)
    try:
        report = day_reports(store, day or today(), ZONE, now=datetime.now(UTC)).store
    finally:
        store.close()
    return {k: int(getattr(report, k)) for k in Z_FIELDS}


def audit_count(data: Path) -> int:
    store = Store(data, readonly=True, map_size=256 << 20)
    try:
        return store.count("audit")
    finally:
        store.close()


async def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    with trio.move_on_after(timeout):
        while True:
            got = await predicate()
            if got:
                return got
            await trio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


DEVICE: dict[str, str] = {}  # data dir -> R1's device token (a pairing code is good once)


@asynccontextmanager
async def register(ws: int, data: Path, *, drawer: bool = True) -> AsyncIterator[HubClient]:
    """R1 of a demo store, logged in as the manager: paired (and its drawer opened) the first time."""
    async with connect(f"ws://127.0.0.1:{ws}") as c:
        token = DEVICE.get(str(data))
        if token is None:
            await ready(c, drawer=drawer)
            assert c.device_token
            DEVICE[str(data)] = c.device_token
        else:
            await c.hello(token)
            await c.login("maria", PINS["maria"])
        yield c
