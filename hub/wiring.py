"""The composition root: which features a hub runs, their typed services and hooks, built in startup order."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import trio

from actors import register
from actors.picker import PickerActor
from hub import demo, devices, http_server
from hub.access import HandlerTable
from hub.app import Hub
from hub.backoffice import cash_flags, counts, drawers, returns
from hub.backoffice import feature as backoffice
from hub.backoffice import rest as office_rest
from hub.backoffice.cash_flags import CashWatch
from hub.catalogue import promo_codes
from hub.catalogue import rest as catalogue_rest
from hub.catalogue.live import LiveCatalogue
from hub.chain import feature as chain
from hub.config import StoreConfig, check_facility
from hub.customers import feature as customers
from hub.customers import rest as customers_rest
from hub.customers.service import Customers
from hub.domain.outbox import RetryPolicy
from hub.orders import api as orders_api
from hub.orders import feature as orders
from hub.orders import metrics as orders_metrics
from hub.orders import picking, pickup
from hub.orders.menu import Menu
from hub.orders.service import OrdersContext
from hub.orders.views import readiness_checks as orders_readiness
from hub.orders.views import snapshot as orders_snapshot
from hub.sale import (
    bank,
    browse,
    card,
    cart,
    checkin,
    demo_api,
    drawer,
    pay,
    queue,
    receipts,
    reprint,
    void,
)
from hub.sale import demo as sale_demo
from hub.sale.context import SaleContext, sale_of
from hub.sale.opening import open_sale
from hub.sale.queue import queue_snapshot
from hub.sale.snapshot import sale_snapshot
from hub.services import Services
from hub.state_channel import api as state_api
from hub.state_channel import feature as state_channel
from hub.state_channel.demo import InProcessSandbox
from hub.state_channel.feature import ChannelOptions, StateHealthView, register_state_view
from hub.supervisor import ChildSpec, Supervisor


@dataclass(frozen=True)
class DemoOptions:
    """`storehub demo`: simulated devices on the first register, the bundled state sandbox, demo data."""

    devices: bool = True
    sandbox: bool = True
    scale_protocol: str = "ad"


@dataclass(frozen=True)
class SaleOptions:
    demo: bool = False  # the demo catalogue, customers and promotions
    taxes: dict[str, Any] | None = None  # a tax table instead of store.toml's (tests)


@dataclass(frozen=True)
class CustomersOptions:
    crm_retry_policy: RetryPolicy | None = None  # tests retry in seconds


@dataclass(frozen=True)
class Features:
    """Which features a hub runs (None or False: not this one). ``Features()`` is the foundation alone:
    login, pairing, incidents; ``Features.store()`` is a store's full hub."""

    sale: SaleOptions | None = None
    devices: bool = False
    state_channel: ChannelOptions | None = None
    backoffice: bool = False
    orders: orders.OrdersOptions | None = None
    customers: CustomersOptions | None = None
    catalogue: bool = False
    chain: bool = False
    demo: DemoOptions | None = None

    @classmethod
    def store(cls, demo: DemoOptions | None = None) -> Features:
        return cls(
            sale=SaleOptions(demo=demo is not None),
            devices=True,
            state_channel=ChannelOptions(),
            backoffice=True,
            orders=orders.OrdersOptions(),
            customers=CustomersOptions(),
            catalogue=True,
            chain=True,
            demo=demo,
        )


@dataclass(frozen=True)
class FeatureTables:
    """The commands a feature answers and the REST routes it serves."""

    handlers: tuple[HandlerTable, ...] = ()
    routes: tuple[http_server.RouteTable, ...] = ()


# a hub joins the tables of the features it runs: a command of a feature it does not run is `unsupported`
FOUNDATION = FeatureTables((register.HANDLERS,), (http_server.ROUTES,))
SALE = FeatureTables(
    (
        checkin.HANDLERS,
        cart.HANDLERS,
        browse.HANDLERS,
        queue.HANDLERS,
        drawer.HANDLERS,
        pay.HANDLERS,
        card.HANDLERS,
        void.HANDLERS,
        receipts.HANDLERS,
        reprint.HANDLERS,
        sale_demo.HANDLERS,
    ),
    (demo_api.ROUTES,),
)
DEVICES = FeatureTables((devices.HANDLERS,))
STATE_CHANNEL = FeatureTables(routes=(state_api.ROUTES,))
BACKOFFICE = FeatureTables(
    (drawers.HANDLERS, counts.HANDLERS, returns.HANDLERS, cash_flags.HANDLERS), (office_rest.ROUTES,)
)
ORDERS = FeatureTables((picking.HANDLERS, pickup.HANDLERS), (orders_api.ROUTES,))
CUSTOMERS = FeatureTables(routes=(customers_rest.ROUTES,))
CATALOGUE = FeatureTables((promo_codes.HANDLERS,), (catalogue_rest.ROUTES,))
CHAIN = FeatureTables(routes=(chain.ROUTES,))


def tables(features: Features) -> tuple[HandlerTable, http_server.RouteTable]:
    """The hub's command table and route table for ``features``."""
    wired = [
        FOUNDATION,
        *([SALE] if features.sale is not None else []),
        *([DEVICES] if features.devices else []),
        *([STATE_CHANNEL] if features.state_channel is not None else []),
        *([BACKOFFICE] if features.backoffice else []),
        *([ORDERS] if features.orders is not None else []),
        *([CUSTOMERS] if features.customers is not None else []),
        *([CATALOGUE] if features.catalogue else []),
        *([CHAIN] if features.chain else []),
    ]
    handlers = HandlerTable.join(*(t for f in wired for t in f.handlers))
    routes = http_server.RouteTable.join(*(t for f in wired for t in f.routes))
    return handlers, routes


def build(config: StoreConfig, features: Features) -> Hub:
    """A hub that runs ``features``; its services are built here in startup order (``Hub.run`` runs the setup
    steps once the store is open, starts the registers, then runs the start steps in this order)."""
    services = Services()
    services.handlers, services.routes = tables(features)
    hub = Hub(config, services)
    demo_opts = features.demo

    # the sale (issue 4): catalogue, check-in, cart, commit; everything below builds on it
    if features.sale is not None:
        _wire_sale(hub, services, features.sale)
    # devices (issue 6): scales, scanners, printers, payment terminals
    if features.devices:
        _wire_devices(hub, services, demo_opts)
    # the state system's channel (issue 5): outbox, pulls, receiving; the demo's sandbox
    if features.state_channel is not None:
        _wire_state_channel(hub, services, features.state_channel, demo_opts)
    # the back office (issue 7): drawers, returns, counts, cash flags, readiness
    if features.backoffice:
        _wire_backoffice(hub, services)
    # online orders and picking (issue 14)
    if features.orders is not None:
        _wire_orders(hub, services, features.orders, demo=demo_opts is not None)
    # customers, loyalty and the CRM bridge (issue 16)
    if features.customers is not None:
        _wire_customers(
            hub, services, features.customers, demo=demo_opts is not None, sale=features.sale is not None
        )
    # the live catalogue (issue 16)
    if features.catalogue:
        _wire_catalogue(hub, services, sale=features.sale is not None)
    # the store as one of a chain (issue 17)
    if features.chain:
        _wire_chain(hub, services)
    if demo_opts is not None:  # demo staff and pairing codes, once the store is open
        services.setup.append(_seed_demo)
    return hub


def _wire_sale(hub: Hub, services: Services, options: SaleOptions) -> None:
    async def open_the_sale(h: Hub) -> None:
        h.services.sale = await open_sale(h, demo=options.demo, taxes=options.taxes)
        h.services.customer_queue = queue.CustomerQueue(h)

    services.setup.append(open_the_sale)
    services.snapshot_providers += [sale_snapshot, queue_snapshot]
    # the register's sale is loaded before each command, so a failed command rolls back to it
    services.register_loaders.append(sale_of)
    services.pay_by_bank = bank.provider_from_config(hub.config.pay_by_bank)


def _wire_devices(hub: Hub, services: Services, demo_opts: DemoOptions | None) -> None:
    device_hub = devices.DeviceHub(hub)
    services.devices = device_hub
    devices.add_configured(device_hub)
    if demo_opts is not None and demo_opts.devices and hub.config.registers:
        services.start.append(
            functools.partial(devices.start_demo_devices, device_hub, demo_opts.scale_protocol)
        )
    services.start.append(device_hub.start)
    services.after_sale.append(functools.partial(device_hub.after_sale, hub))


def _wire_state_channel(
    hub: Hub, services: Services, options: ChannelOptions, demo_opts: DemoOptions | None
) -> None:
    sandbox = None
    if demo_opts is not None and demo_opts.sandbox:
        sandbox = InProcessSandbox(hub, hub.config.data_dir / "sandbox")  # points the hub at it
    check_facility(hub.config)  # a store and its facility in one state and zone, or the hub does not start
    channel = state_channel.build(hub, options)
    services.state_channel = channel
    services.state_health = StateHealthView(channel)

    async def start(h: Hub, sup: Supervisor) -> None:
        await state_channel.start(h, sup, channel, sandbox)

    services.start.append(start)
    services.snapshot_providers.append(register_state_view)


def _wire_backoffice(hub: Hub, services: Services) -> None:
    watch = CashWatch(hub)
    services.cash_watch = watch
    services.after_sale.append(functools.partial(watch.after_sale, hub))
    services.start.append(cash_flags.start)
    services.snapshot_providers.append(backoffice.office_snapshot)


def _wire_orders(hub: Hub, services: Services, options: orders.OrdersOptions, *, demo: bool) -> None:
    cfg = hub.config
    ctx = OrdersContext(
        hub=hub, channels={c.id: c for c in cfg.channels}, settings=cfg.orders, notices=cfg.notices
    )
    services.orders = ctx
    services.orders_menu = Menu(boot=hub.boot_id)
    services.order_pick_seconds = orders_metrics.pick_seconds(hub.metrics.registry)
    services.actor_kinds["picker"] = PickerActor
    services.snapshot_providers.append(orders_snapshot)
    services.readiness_checks.append(lambda: orders_readiness(hub))

    deliveries = orders.build_deliveries(hub, ctx, options)
    services.order_callbacks, services.notices = deliveries.callbacks, deliveries.notices

    async def start(h: Hub, sup: Supervisor) -> None:
        await orders.start(h, sup, ctx, deliveries, options, demo=demo)

    services.start.append(start)
    services.after_sale.append(functools.partial(orders.after_sale, hub))


def _wire_customers(
    hub: Hub, services: Services, options: CustomersOptions, *, demo: bool, sale: bool
) -> None:
    people = Customers(hub, customers.program_of(hub.config))
    services.customers = people
    services.crm_retry_policy = options.crm_retry_policy
    services.after_sale.append(functools.partial(people.after_sale, hub))
    services.readiness_checks.append(people.readiness)
    if not sale:  # records and REST only: no loyalty at a register, no CRM bridge
        return

    async def setup(h: Hub) -> None:
        await customers.attach_to_sale(h, people, _opened_sale(h))

    async def start(h: Hub, sup: Supervisor) -> None:
        await customers.start(h, sup, people, demo=demo)

    services.setup.append(setup)
    services.start.append(start)


def _wire_catalogue(hub: Hub, services: Services, *, sale: bool) -> None:
    live = LiveCatalogue(hub)
    services.catalogue = live
    if not sale:
        return

    async def setup(h: Hub) -> None:
        # the stored promotions (seeded once from store.toml) become the live list
        await trio.to_thread.run_sync(live.seed, _opened_sale(h).settings.promotions)
        live.reload()

    async def start(h: Hub, sup: Supervisor) -> None:
        # scheduled price changes are applied when their time comes
        await sup.start(ChildSpec(name="catalogue-prices", run=live.run))

    services.setup.append(setup)
    services.start.append(start)


def _opened_sale(h: Hub) -> SaleContext:
    """The sale, opened by its setup step, which runs before the steps of the features built on it."""
    if h.services.sale is None:
        raise RuntimeError("the sale's setup step has not run")
    return h.services.sale


def _wire_chain(hub: Hub, services: Services) -> None:
    state = chain.ChainState(hub)
    services.chain = state
    chain.register_metrics(hub, state)
    if hub.config.chain is None:
        return

    async def start(h: Hub, sup: Supervisor) -> None:
        await chain.start(h, sup, state)

    services.start.append(start)
    services.snapshot_providers.append(lambda actor: {"chain": {"catalogue_version": state.version}})


async def _seed_demo(h: Hub) -> None:
    await trio.to_thread.run_sync(demo.seed_demo, h.store, h.config)
