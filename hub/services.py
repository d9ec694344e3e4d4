"""The typed services a running hub holds, one field per feature, and its hook lists; filled by hub/wiring.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import trio

from hub.access import HandlerTable
from hub.http_server import RouteTable

if TYPE_CHECKING:
    from prometheus_client import Histogram

    from actors.delivery import DeliveryActor
    from actors.register import RegisterActor
    from drivers.paybybank import PayByBankProvider
    from drivers.sim.demo import DemoDevices
    from hub.app import Hub
    from hub.backoffice.cash_flags import CashWatch
    from hub.backoffice.readiness import Check
    from hub.catalogue.live import LiveCatalogue
    from hub.chain.feature import ChainState
    from hub.config import RegisterKind, StoreConfig
    from hub.customers.service import Customers
    from hub.device_health import DeviceStatus
    from hub.devices import DeviceHub, ScaleSimControl, TerminalHandle, TerminalSimControl
    from hub.domain.demo_catalogue import DemoStore
    from hub.domain.outbox import RetryPolicy
    from hub.domain.tender import Settlement
    from hub.metrics import Metrics
    from hub.orders.menu import Menu
    from hub.orders.service import OrdersContext
    from hub.sale.context import SaleContext
    from hub.sale.queue import CustomerQueue
    from hub.state_channel.feature import StateChannel, StateHealthView
    from hub.store.env import Store
    from hub.store.writer import StoreWriter
    from hub.supervisor import Supervisor
    from sandbox.paybybank import PayByBankEmulator

    # a setup step runs once the store and its writer are open, before the registers start
    SetupStep = Callable[[Hub], Awaitable[None]]
    # a start step runs after the registers started, before the servers accept anyone
    StartStep = Callable[[Hub, Supervisor], Awaitable[None]]
    # bound to its feature by hub/wiring.py: (register, receipt number, settlement)
    AfterSale = Callable[[str, int, Settlement], None]
    SnapshotProvider = Callable[[RegisterActor], dict[str, Any]]


@dataclass
class DemoServices:
    """What only `storehub demo` runs: the demo store's people and goods, simulators and their controls."""

    store: DemoStore | None = None  # the demo catalogue's customers (set when it is first seeded)
    sandbox_url: str = ""  # the in-process state-system sandbox
    devices: DemoDevices | None = None  # simulated devices on ptys and TCP
    pay_by_bank: PayByBankEmulator | None = None
    scale: dict[str, ScaleSimControl] = field(default_factory=dict)  # register id -> its simulated scale
    terminal: dict[str, TerminalSimControl] = field(default_factory=dict)


@dataclass
class Services:
    """One typed field per feature (None when the hub does not run it) and the hooks, in the order they run."""

    sale: SaleContext | None = None
    customer_queue: CustomerQueue | None = None  # the store's one queue of checked-in customers
    pay_by_bank: PayByBankProvider | None = None
    devices: DeviceHub | None = None
    device_health: dict[str, DeviceStatus] = field(default_factory=dict)  # device id -> its latest health
    terminal_handles: dict[str, TerminalHandle] = field(default_factory=dict)
    card_reversal_lock: trio.Lock = field(default_factory=trio.Lock)  # one card reversal at a time
    state_channel: StateChannel | None = None
    state_health: StateHealthView | None = None
    state_quantity: Callable[[str], int | None] | None = None  # the state's figure per package, when offered
    cash_watch: CashWatch | None = None
    orders: OrdersContext | None = None
    orders_menu: Menu | None = None
    order_callbacks: DeliveryActor | None = None
    notices: DeliveryActor | None = None
    order_pick_seconds: Histogram | None = None
    customers: Customers | None = None
    crm_retry_policy: RetryPolicy | None = None
    catalogue: LiveCatalogue | None = None
    chain: ChainState | None = None
    demo: DemoServices = field(default_factory=DemoServices)

    # the commands and REST routes of the wired features, joined by hub/wiring.py
    handlers: HandlerTable = field(default_factory=HandlerTable)
    routes: RouteTable = field(default_factory=RouteTable)

    # register kinds other than the plain register (the picker)
    actor_kinds: dict[RegisterKind, type[RegisterActor]] = field(default_factory=dict)
    setup: list[SetupStep] = field(default_factory=list)
    start: list[StartStep] = field(default_factory=list)
    snapshot_providers: list[SnapshotProvider] = field(default_factory=list)
    # loaded before each register command, so a failed command rolls back to it
    register_loaders: list[Callable[[RegisterActor], object]] = field(default_factory=list)
    after_sale: list[AfterSale] = field(default_factory=list)
    readiness_checks: list[Callable[[], list[Check]]] = field(default_factory=list)


class HubParts(Protocol):
    """What a helper shared by the live handlers and the hub's other paths reads: the store and its writer,
    the configuration, the services and the metrics. A running ``Hub`` has them, and so have a command's
    ``Request`` and a register's ``RegisterParts`` (actors/register.py), which do not carry the hub."""

    @property
    def store(self) -> Store: ...

    @property
    def writer(self) -> StoreWriter: ...

    @property
    def config(self) -> StoreConfig: ...

    @property
    def services(self) -> Services: ...

    @property
    def metrics(self) -> Metrics: ...
