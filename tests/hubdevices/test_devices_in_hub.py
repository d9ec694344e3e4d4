"""Devices wired into a running hub: pty scale, pty scanner, TCP printer and payment terminal simulators."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from hub.app import Hub
from hub.client import ClientError, HubClient, connect
from hub.config import StoreConfig
from hub.devices import DeviceHub
from hub.domain.demo_catalogue import DemoStore
from hub.sale import inventory
from hub.wiring import DemoOptions, Features, SaleOptions
from tests.conftest import DEMO_PAIRING, PINS, ws_url

FLOAT = {"B20": 10, "B5": 10}


@pytest.fixture
async def device_hub(hub_factory: Callable[..., Any], config: StoreConfig) -> Hub:
    config.server.demo = True
    options = DemoOptions(devices=True, sandbox=False, scale_protocol="nci")
    return await hub_factory(
        config, features=Features(sale=SaleOptions(demo=True), devices=True, demo=options)
    )


async def ready(c: HubClient) -> None:
    await c.pair(DEMO_PAIRING["R1"])
    await c.login("maria", PINS["maria"])
    await c.request("open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])


def demo(hub: Hub) -> DemoStore:
    return hub.services.demo.store  # type: ignore[no-any-return]


async def test_scanner_and_pty_scale_drive_a_weighed_sale(device_hub: Hub) -> None:
    hub = device_hub
    sims = hub.services.demo.devices
    d = demo(hub)
    bulk = next(p for p in d.products if p.sold_by == "weight" and p.category == "flower")
    pkg = next(
        p
        for p in inventory.packages_of(hub.store, bulk.id)
        if p.status == "active" and p.lab_testing == "passed" and p.quantity > 10_000
    )
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready(c)
            await c.wait_snapshot(lambda s: any(x["kind"] == "scanner" and x["up"] for x in s["devices"]))
            # the customer's licence read by the serial scanner: control characters and all
            sims.scanner.scan_now(d.customer("adult").id_scan)
            await c.wait_snapshot(
                lambda s: s["customer"] is not None and s["customer"]["decision"]["allowed"]
            )
            sims.scale.set_weight(3_540, motion=True)
            await c.wait_snapshot(lambda s: s["scale"] and s["scale"]["weight_mg"] == 3_540)
            with pytest.raises(ClientError) as e:
                await c.request("weigh_line", tag=pkg.tag)
            assert e.value.code == "scale_motion"
            sims.scale.set_weight(3_540, motion=False)
            await c.wait_snapshot(lambda s: s["scale"]["stable"] and s["scale"]["weight_mg"] == 3_540)
            await c.request("weigh_line", tag=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            line = snap["state"]["cart"]["lines"][0]
            assert line["weight_mg"] == 3_540 and line["scale"] == "scale-nci"
            total = snap["state"]["cart"]["total_cents"]
            await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
            # the receipt reached the printer, with the drawer kick for a cash sale
            with trio.fail_after(10):
                while not sims.receipt_printer.received:
                    await trio.sleep(0.05)
            printed = bytes(sims.receipt_printer.received)
            assert b"\x1bp\x00\x19\xfa" in printed and pkg.tag.encode() in printed


async def test_scale_unplugged_then_back_without_restart(device_hub: Hub) -> None:
    hub = device_hub
    sims = hub.services.demo.devices
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready(c)
            await c.wait_snapshot(lambda s: s["scale"] and s["scale"]["up"])
            sims.scale.unplug()
            await c.wait_snapshot(lambda s: s["scale"] and not s["scale"]["up"])
            assert hub.metrics.device_up.labels("scale-nci", "scale")._value.get() == 0
            sims.scale.replug()
            sims.scale.set_weight(1_000)
            await c.wait_snapshot(
                lambda s: s["scale"] and s["scale"]["up"] and s["scale"]["weight_mg"] == 1_000
            )
    assert hub.supervisor.children["device:scale-nci"].restarts == 0


async def test_terminal_offline_register_told_and_cash_still_works(device_hub: Hub) -> None:
    hub = device_hub
    d = demo(hub)
    pkg = next(
        p for p in inventory.packages_of(hub.store, "FLW-001") if p.status == "active" and p.quantity > 2
    )
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c)
            await c.wait_snapshot(lambda s: s["terminal"]["up"])
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            total = snap["state"]["cart"]["total_cents"]
            await c.request("demo_terminal", mode="decline")
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            assert e.value.code == "card_declined"
            await c.request("demo_terminal", mode="offline")
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            assert e.value.code in ("card_offline", "terminal_offline")
            snap = await c.wait_snapshot(lambda s: s["terminal"]["cash_only"])
            assert "cash only" in snap["state"]["terminal"]["message"].lower()
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
            assert paid["receipt_number"] >= 1


async def test_printer_down_does_not_block_the_sale_and_prints_later(device_hub: Hub) -> None:
    hub = device_hub
    sims = hub.services.demo.devices
    d = demo(hub)
    pkg = next(
        p for p in inventory.packages_of(hub.store, "FLW-001") if p.status == "active" and p.quantity > 2
    )
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c)
            sims.receipt_printer.go_offline()
            await c.request("scan", data=d.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag)
            snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            total = snap["state"]["cart"]["total_cents"]
            with trio.fail_after(5):  # the sale never waits on the printer
                paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
            await c.wait_snapshot(lambda s: any(x["kind"] == "printer" and not x["up"] for x in s["devices"]))
            assert not sims.receipt_printer.received
            sims.receipt_printer.come_online()
            while str(paid["receipt_number"]).encode() not in bytes(sims.receipt_printer.received):
                await trio.sleep(0.1)


async def test_exit_label_printed_in_zpl(device_hub: Hub) -> None:
    hub = device_hub
    sims = hub.services.demo.devices
    pkg = next(p for p in inventory.packages_of(hub.store, "FLW-001") if p.status == "active")
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await ready(c)
            res = await c.request("print_exit_label", tag=pkg.tag)
            assert res["printer"] == "label-1"
            while pkg.tag.encode() not in bytes(sims.label_printer.received):
                await trio.sleep(0.05)
    zpl = bytes(sims.label_printer.received)
    assert b"^XA" in zpl and b"^BC" in zpl and b"^XZ" in zpl
    assert not sims.receipt_printer.received  # labels never go to the receipt printer


async def test_a_zebra_out_of_media_sets_the_printer_paper_signal_until_media_is_back(
    device_hub: Hub,
) -> None:
    """storehub_printer_paper_out (alert PrinterPaperOut) from the Zebra's own answer: silent to ~HS, "media
    out" in ~HQES. 0 from the start for every printer, 1 while out, 0 again once media is back."""
    hub = device_hub
    sims = hub.services.demo.devices
    paper_out = hub.metrics.printer_paper_out
    pkg = next(p for p in inventory.packages_of(hub.store, "FLW-001") if p.status == "active")
    assert paper_out.labels("label-1", "label_printer")._value.get() == 0
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await ready(c)
            receipt = next(
                x
                for x in (await c.wait_snapshot(lambda s: True))["state"]["devices"]
                if x["kind"] == "printer"
            )
            assert paper_out.labels(receipt["id"], "printer")._value.get() == 0
            sims.label_printer.paper_out = True
            await c.request("print_exit_label", tag=pkg.tag)  # the job makes the spooler ask at once
            while paper_out.labels("label-1", "label_printer")._value.get() != 1:
                await trio.sleep(0.05)
            sims.label_printer.paper_out = False
            while pkg.tag.encode() not in bytes(sims.label_printer.received):
                await trio.sleep(0.05)
            assert paper_out.labels("label-1", "label_printer")._value.get() == 0


def test_device_message_ids_do_not_repeat_after_a_restart() -> None:
    """Stored replies outlive a restart: a serial scan's id from the new process must not be one the old
    process already used (the first scan after a restart would be answered from the old scan's reply)."""
    before = DeviceHub(SimpleNamespace(boot_id="a1b2c3d4e5f6"))  # type: ignore[arg-type]
    after = DeviceHub(SimpleNamespace(boot_id="0f9e8d7c6b5a"))  # type: ignore[arg-type]
    first = [before.next_id() for _ in range(3)]
    again = [after.next_id() for _ in range(3)]
    assert len(set(first)) == 3 and not set(first) & set(again)
