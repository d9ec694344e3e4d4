"""Online orders and handheld picking (issue 14): the signed intake and menu for e-commerce channels, the
order queue with reservations, the picker actor's commands, channel callbacks and customer notices through
their own durable outboxes, pickup at the register, expiry, metrics and the demo's orders.

``install(hub, demo_options)`` wires it into a hub before it starts (after ``hub.sale``, which it builds
on). Kept import-light: ``hub.sale.cart`` imports ``hub.orders.stock`` at its top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.app import Hub


def install(
    hub: Hub,
    demo_options: dict[str, Any] | None = None,
    *,
    housekeeping_every: float = 30.0,
    retry_policy: Any = None,
    poll_seconds: float = 2.0,
) -> None:
    from actors.delivery import DeliveryActor
    from actors.notifier import Notifier
    from actors.order_callbacks import ChannelCallbacks
    from actors.picker import PickerActor
    from hub.domain.outbox import DEFAULT_POLICY
    from hub.orders import (  # noqa: F401  (register the picker's and the register's commands)
        api,  # noqa: F401  (registers the REST routes)
        picking,
        pickup,
    )
    from hub.orders.menu import Menu
    from hub.orders.metrics import install_metrics
    from hub.orders.service import OrdersContext, housekeeping
    from hub.orders.views import readiness_checks, snapshot
    from hub.supervisor import ChildSpec

    cfg = hub.config
    ctx = OrdersContext(
        hub=hub, channels={c.id: c for c in cfg.channels}, settings=cfg.orders, notices=cfg.notices
    )
    hub.extensions["orders"] = ctx
    hub.extensions["orders_menu"] = Menu(boot=hub.boot_id)
    hub.extensions.setdefault("actor_kinds", {})["picker"] = PickerActor
    hub.snapshot_providers.append(snapshot)
    hub.extensions.setdefault("readiness_checks", []).append(lambda: readiness_checks(hub))
    policy = retry_policy or DEFAULT_POLICY

    async def starter(h: Hub, sup: Any) -> None:
        install_metrics(h)
        ctx.changed()  # the ready orders as stored
        # the first menu walks every table: do it now rather than on a channel's first request
        await h.extensions["orders_menu"].refresh(h.store, ctx.today())
        callbacks = ChannelCallbacks(ctx.channels, cfg.orders.callback_timeout_seconds)
        notifier = Notifier(cfg.notices, cfg.store.name)
        for name, table, transport, session in (
            ("order-callbacks", "order_callbacks", callbacks.send, callbacks.session),
            ("notifier", "notices", notifier.send, notifier.session),
        ):
            actor = DeliveryActor(
                h, table, transport, retry_policy=policy, poll_seconds=poll_seconds, session=session
            )
            ctx.wakers.append(actor.wake)
            h.extensions[f"orders_{table}"] = actor
            await sup.start(ChildSpec(name=name, run=actor.run))

        async def expiry(*, task_status: Any) -> None:
            await housekeeping(h, housekeeping_every, task_status=task_status)

        await sup.start(ChildSpec(name="order-expiry", run=expiry))
        if demo_options is not None:
            from hub.orders.demo import seed_demo_orders

            await seed_demo_orders(h)

    hub.extensions.setdefault("starters", []).append(starter)

    def after_sale(h: Hub, register_id: str, receipt_number: int, settlement: Any) -> None:
        if ctx.any_ready():  # a pickup may have completed an order: other screens list ready orders
            ctx.changed()

    hub.extensions.setdefault("after_sale", []).append(after_sale)
