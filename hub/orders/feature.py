"""Online orders as a feature of the hub: its options, what starts once the registers run, the after-sale hook.

hub/wiring.py wires it after the sale, which it builds on."""

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


async def start(hub: Hub, sup: Supervisor, ctx: OrdersContext, options: OrdersOptions, *, demo: bool) -> None:
    """Metrics, the first menu, the channel-callback and notice outboxes, expiry; the demo's orders."""

    cfg = hub.config
    install_metrics(hub)
    ctx.changed()  # the ready orders as stored
    # the first menu walks every table: do it now rather than on a channel's first request
    menu = hub.services.orders_menu
    if menu is not None:
        await menu.refresh(hub.store, ctx.today())
    policy = options.retry_policy or DEFAULT_POLICY
    callbacks = ChannelCallbacks(ctx.channels, cfg.orders.callback_timeout_seconds)
    notifier = Notifier(cfg.notices, cfg.store.name)
    actor = DeliveryActor(
        hub,
        "order_callbacks",
        callbacks.send,
        retry_policy=policy,
        poll_seconds=options.poll_seconds,
        session=callbacks.session,
    )
    ctx.wakers.append(actor.wake)
    hub.services.order_callbacks = actor
    await sup.start(ChildSpec(name="order-callbacks", run=actor.run))
    actor = DeliveryActor(
        hub,
        "notices",
        notifier.send,
        retry_policy=policy,
        poll_seconds=options.poll_seconds,
        session=notifier.session,
    )
    ctx.wakers.append(actor.wake)
    hub.services.notices = actor
    await sup.start(ChildSpec(name="notifier", run=actor.run))

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
