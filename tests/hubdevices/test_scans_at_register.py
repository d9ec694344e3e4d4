"""Scans at the register over the live protocol: a Metrc Retail ID QR adds its package (decoded offline,
same checks as a tag scan); a licence refusal blames the scanner's mode only when the scan was typed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from hub.app import Hub
from hub.client import ClientError, connect
from hub.config import StoreConfig
from hub.sale import inventory
from hub.wiring import Features, SaleOptions
from tests.conftest import ws_url
from tests.sale.test_sale_live import demo, open_drawer, ready_register, sellable_unit_package


@pytest.fixture
async def store_hub(hub_factory: Callable[..., Any], config: StoreConfig) -> Hub:

    config.server.demo = True
    return await hub_factory(config, features=Features(sale=SaleOptions(demo=True)))


def retail_id_url(label: str, index: int) -> str:
    """What a Retail ID QR holds for unit ``index`` of package ``label``, built the way Metrc's Retail ID
    SDK README describes (batch id bytes + LEB128 index, base 36, upper-case HTTPS scheme), written
    here independently of hub/domain/retail_id.py."""
    data = bytes.fromhex(label)
    n = index
    while True:
        low, n = n & 0x7F, n >> 7
        data += bytes([low | (0x80 if n else 0)])
        if not n:
            break
    number, digits = int.from_bytes(data, "big"), ""
    while number:
        number, r = divmod(number, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[r] + digits
    return f"HTTPS://1A4.COM/{digits}"


def test_builder_matches_the_sdk_readme_example():
    assert retail_id_url("1A4060300020081000006609", 1) == "HTTPS://1A4.COM/5LN8CBN1UB33DON9CHKX"


async def test_retail_id_qr_at_the_register_adds_the_right_package(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    pkg = sellable_unit_package(hub, "FLW-001")
    other = sellable_unit_package(hub, "FLW-001", skip={pkg.tag})
    before = pkg.quantity
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await open_drawer(c)
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("scan", data=retail_id_url(pkg.tag, 3))
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            lines = snap["state"]["cart"]["lines"]
            assert len(lines) == 1 and lines[0]["quantity"] == 1
            assert pkg.tag in str(lines[0]) and other.tag not in str(lines[0])
            # a lower-cased scan of the same QR (scanner set to lower case) is the same package
            await c.request("scan", data=retail_id_url(pkg.tag, 4).lower())
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"][0]["quantity"] == 2)
            total = snap["state"]["cart"]["total_cents"]
            # the same checks as a tag scan: a Retail ID of a package the store does not hold is refused
            with pytest.raises(ClientError):
                await c.request("scan", data=retail_id_url("1A4000000000000000000999", 1))
            await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
    after = inventory.package(hub.store, pkg.tag)
    assert after is not None and after.quantity == before - 2


async def test_licence_refusal_blames_the_wedge_only_for_typed_scans(store_hub: Hub) -> None:
    d = demo(store_hub)
    payload = d.customer("adult").id_scan
    run_together = payload.replace("\n", "").replace("\r", "").replace("\x1e", "")
    with trio.fail_after(30):
        async with connect(ws_url(store_hub)) as c:
            await ready_register(c)
            with pytest.raises(ClientError) as typed:
                await c.request("scan", data=run_together, source="wedge")
            assert "keyboard" in str(typed.value) and "licence" in str(typed.value)
            with pytest.raises(ClientError) as serial:
                await c.request("scan", data=run_together, source="serial")
            assert "keyboard" not in str(serial.value) and "scan it again" in str(serial.value).lower()
            # the same licence whole from the serial scanner, its header RS lost: read, not refused
            res = await c.request("scan", data=payload.replace("\x1e", "", 1), source="serial")
            assert res["kind"] == "id" and res["allowed"] is True
