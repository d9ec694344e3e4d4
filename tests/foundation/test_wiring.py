"""The composition root: which services each choice of features builds, before the hub starts."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
import trio

from actors.delivery import DeliveryActor
from actors.picker import PickerActor
from actors.state_sync import StateSyncActor
from hub import wiring
from hub.app import Hub, StoreNotOpen
from hub.client import ClientError, connect
from hub.config import ConfigError
from hub.live.frames import Login
from hub.orders.feature import OrdersOptions
from hub.orders.protocol import ClaimOrder
from hub.sale.protocol import OpenDrawer, Scan
from hub.services import DemoServices
from hub.wiring import DemoOptions, Features, SaleOptions
from sandbox import demo as sbx
from tests.conftest import DEMO_PAIRING, PINS, make_config, ws_url


def test_the_foundation_alone_wires_no_feature(tmp_path: Path) -> None:
    s = wiring.build(make_config(tmp_path), Features()).services
    assert (
        s.sale,
        s.devices,
        s.state_channel,
        s.cash_watch,
        s.orders,
        s.customers,
        s.catalogue,
        s.chain,
    ) == ((None,) * 8)
    assert not (s.setup or s.start or s.after_sale or s.snapshot_providers or s.register_loaders)
    assert s.actor_kinds == {} and s.demo == DemoServices()
    assert (s.state_health, s.order_callbacks, s.notices) == (None, None, None)


def test_a_store_wires_every_feature_with_its_hooks(tmp_path: Path) -> None:
    s = wiring.build(make_config(tmp_path), Features.store()).services
    assert s.sale is None  # opened once the store is open: the first setup step
    assert None not in (s.devices, s.state_health, s.cash_watch, s.orders, s.orders_menu, s.customers)
    assert None not in (s.catalogue, s.chain)
    assert s.actor_kinds == {"picker": PickerActor}
    # setup: the sale, then customers and the live catalogue built on it; no demo seeding outside the demo
    assert len(s.setup) == 3
    # start: devices, the state channel, cash flags, orders, customers, catalogue (no [chain]: no link)
    assert len(s.start) == 6
    # after a sale: the printer, cash flags, pickups, loyalty (the state channel wakes on the outbox's
    # commit, hub/store/commits.py: issue 13 item 5, one wake path)
    assert len(s.after_sale) == 4
    assert len(s.readiness_checks) == 2
    assert s.demo.sandbox_url == "" and s.pay_by_bank is None


def test_the_demo_wires_its_simulators_sandbox_and_seeds(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    s = wiring.build(config, Features.store(DemoOptions(scale_protocol="nci"))).services
    assert s.demo.sandbox_url.startswith("http://127.0.0.1:")
    assert config.state_system.kind == "metrc" and config.state_system.base_url == s.demo.sandbox_url
    assert len(s.setup) == 4  # … and the demo staff and pairing codes last
    assert len(s.start) == 7  # the simulated devices start before the device actors
    plain = wiring.build(
        make_config(tmp_path / "b"), Features.store(DemoOptions(devices=False, sandbox=False))
    )
    assert plain.services.demo.sandbox_url == "" and len(plain.services.start) == 6


async def test_a_demo_sandbox_whose_port_is_taken_before_it_binds_moves_and_points_the_hub_there(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    config = make_config(tmp_path)
    hub = wiring.build(config, Features.store(DemoOptions(devices=False)))
    taken = hub.services.demo.sandbox_url
    with socket.create_server(("127.0.0.1", int(taken.rsplit(":", 1)[1]))):  # another process got there first
        with trio.fail_after(30):
            await nursery.start(hub.run)
    try:
        url = hub.services.demo.sandbox_url
        assert url != taken and config.state_system.base_url == url
        # the demo's CRM endpoint is set when the customers start, after the sandbox moved
        assert config.crm is not None and config.crm.url.startswith(url)
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"{url}/_sandbox/crm")).status_code == 200
    finally:
        hub.stop()


def test_a_subset_wires_only_what_it_names(tmp_path: Path) -> None:
    features = Features(sale=SaleOptions(demo=True), orders=OrdersOptions(poll_seconds=0.2))
    s = wiring.build(make_config(tmp_path), features).services
    assert s.orders is not None and s.devices is None and s.cash_watch is None and s.state_health is None
    assert len(s.setup) == 1 and len(s.start) == 1


def test_a_facility_in_another_zone_is_refused_while_wiring(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config.store.jurisdiction, config.store.time_zone = "CO", "America/Denver"
    with pytest.raises(ConfigError):
        wiring.build(config, Features.store(DemoOptions(devices=False)))


def test_a_hub_answers_the_commands_and_routes_of_the_features_it_runs(tmp_path: Path) -> None:
    """The hub's tables are joined from the features it wires; a feature's command is in no other table."""
    foundation = wiring.build(make_config(tmp_path / "a"), Features()).services
    store = wiring.build(make_config(tmp_path / "b"), Features.store()).services
    assert (
        Login in foundation.handlers
        and Scan not in foundation.handlers
        and ClaimOrder not in foundation.handlers
    )
    assert {Login, Scan, ClaimOrder, OpenDrawer} <= set(store.handlers)
    assert set(foundation.handlers) < set(store.handlers)
    assert ("GET", "/healthz") in set(foundation.routes) and ("POST", "/api/v1/orders") not in set(
        foundation.routes
    )
    assert ("POST", "/api/v1/orders") in set(store.routes) and ("GET", "/api/customers/*") in set(
        store.routes
    )
    with_sale = wiring.tables(Features(sale=SaleOptions()))[0]
    assert Scan in with_sale and ClaimOrder not in with_sale and OpenDrawer in with_sale


async def test_a_hub_without_the_sale_answers_a_sale_command_unsupported(hub: Hub) -> None:
    """Review of issue 13, point 1: the register must not crash (and quarantine the message) on a command
    of a feature the hub does not run; over a real socket, the client hears `unsupported`."""
    assert hub.services.sale is None
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            for kind, fields in (("scan", {"data": "X"}), ("claim_order", {"order_id": "o-1"})):
                with pytest.raises(ClientError) as refused:
                    await c.request(kind, **fields)
                assert refused.value.code == "unsupported", refused.value
            # the register still answers, and nothing was quarantined
            await c.request("report_incident", category="other", description="still here")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
            assert (await http.post("/api/v1/orders", content=b"{}")).status_code == 405
            assert (await http.get("/healthz")).status_code == 200
    assert hub.quarantine == []


def test_the_wiring_builds_the_state_channel_and_its_actor_before_the_hub_runs(tmp_path: Path) -> None:
    """The channel is a service like the others: built with the hub, not set by its start step."""
    demo = wiring.build(make_config(tmp_path / "a"), Features.store(DemoOptions(devices=False))).services
    channel = demo.state_channel
    assert channel is not None and channel.system == "metrc" and channel.facility == sbx.METRC_LICENSE
    assert (
        isinstance(channel.actor, StateSyncActor) and channel.reader is None
    )  # the pull client opens at start
    assert demo.state_health is not None and demo.state_health.channel is channel
    # no state system configured: the channel (the outbox accumulates) without an actor
    none = wiring.build(make_config(tmp_path / "b"), Features.store()).services
    assert none.state_channel is not None and none.state_channel.system == "none"
    assert none.state_channel.actor is None
    # a hub without the state feature has no channel, and no REST route of it
    bare = wiring.build(make_config(tmp_path / "c"), Features(sale=SaleOptions())).services
    assert bare.state_channel is None and bare.state_health is None
    assert ("GET", "/api/state/dead-letter") not in set(bare.routes)


def test_the_wiring_builds_the_orders_delivery_actors(tmp_path: Path) -> None:
    s = wiring.build(make_config(tmp_path), Features(sale=SaleOptions(), orders=OrdersOptions())).services
    assert isinstance(s.order_callbacks, DeliveryActor) and isinstance(s.notices, DeliveryActor)
    assert (s.order_callbacks.table, s.notices.table) == ("order_callbacks", "notices")
    assert s.orders is not None
    # a change to an order wakes both
    assert s.orders.wakers == [s.order_callbacks.wake, s.notices.wake]
    assert wiring.build(make_config(tmp_path / "b"), Features(sale=SaleOptions())).services.notices is None


def test_a_hub_not_yet_running_has_no_store_to_hand_out(tmp_path: Path) -> None:
    hub = wiring.build(make_config(tmp_path), Features())
    assert not hub.is_open
    with pytest.raises(StoreNotOpen):
        hub.store  # noqa: B018
    with pytest.raises(StoreNotOpen):
        hub.writer  # noqa: B018


async def test_a_running_hub_has_its_store_and_writer(hub: Hub) -> None:
    assert hub.is_open and hub.ready
    assert hub.writer.store is hub.store
