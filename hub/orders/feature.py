"""Online orders as a feature of the hub: its options, its delivery actors, what starts once the registers run,
the after-sale hook.

hub/wiring.py wires it after the sale, which it builds on: it builds the delivery actors with the orders'
context (``build_deliveries``) and adds ``start``, which runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors.delivery import DeliveryActor
from actors.notifier import Notifier
from actors.order_callbacks import ChannelCallbacks
from hub.domain.outbox import DEFAULT_POLICY
from hub.orders.demo import seed_demo_orders
from hub.orders.metrics import install_metrics
from hub.orders.service import housekeeping
from hub.supervisor import ChildSpec

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.domain.outbox import RetryPolicy
    from hub.domain.tender import Settlement
    from hub.orders.service import OrdersContext
    from hub.supervisor import Supervisor


@dataclass(frozen=True)
class OrdersOptions:
    """How often expiry runs and how the delivery outboxes retry (tests shorten them)."""

    housekeeping_every: float = 30.0
    retry_policy: RetryPolicy | None = None
    poll_seconds: float = 2.0


@dataclass(frozen=True)
class Deliveries:
    """The two delivery outboxes' actors: status changes back to the channels, notices to customers."""

    callbacks: DeliveryActor
    notices: DeliveryActor


def build_deliveries(hub: Hub, ctx: OrdersContext, options: OrdersOptions) -> Deliveries:
    """The channel-callback and notice actors (not yet running); a change to an order wakes both."""
    cfg = hub.config
    policy = options.retry_policy or DEFAULT_POLICY
    callbacks = ChannelCallbacks(ctx.channels, cfg.orders.callback_timeout_seconds)
    notifier = Notifier(cfg.notices, cfg.store.name)
    deliveries = Deliveries(
        callbacks=DeliveryActor(
            hub,
            "order_callbacks",
            callbacks.send,
            retry_policy=policy,
            poll_seconds=options.poll_seconds,
            session=callbacks.session,
        ),
        notices=DeliveryActor(
            hub,
            "notices",
            notifier.send,
            retry_policy=policy,
            poll_seconds=options.poll_seconds,
            session=notifier.session,
        ),
    )
    ctx.wakers += [deliveries.callbacks.wake, deliveries.notices.wake]
    return deliveries


async def start(
    hub: Hub,
    sup: Supervisor,
    ctx: OrdersContext,
    deliveries: Deliveries,
    options: OrdersOptions,
    *,
    demo: bool,
) -> None:
    """Metrics, the first menu, the channel-callback and notice outboxes, expiry; the demo's orders."""
    install_metrics(hub)
    ctx.changed()  # the ready orders as stored
    # the first menu walks every table: do it now rather than on a channel's first request
    menu = hub.services.orders_menu
    if menu is not None:
        await menu.refresh(hub.store, ctx.today())
    await sup.start(ChildSpec(name="order-callbacks", run=deliveries.callbacks.run))
    await sup.start(ChildSpec(name="notifier", run=deliveries.notices.run))

    async def expiry(*, task_status: Any) -> None:
        await housekeeping(hub, options.housekeeping_every, task_status=task_status)

    await sup.start(ChildSpec(name="order-expiry", run=expiry))
    if demo:
        await seed_demo_orders(hub)


def after_sale(hub: Hub, register_id: str, receipt_number: int, settlement: Settlement) -> None:
    ctx = hub.services.orders
    if (
        ctx is not None and ctx.any_ready()
    ):  # a pickup may have completed an order: other screens list ready orders
        ctx.changed()
