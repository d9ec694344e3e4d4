"""Which features a hub runs: each feature module adds its handlers, snapshot parts, actors and routes.

Every module listed in FEATURES exposes ``install(hub, demo_options)`` (``demo_options`` is None outside
the demo) and is installed before the hub starts, in this order, so that startup order stays explicit.
"""

from __future__ import annotations

import importlib
from typing import Any

import trio

from hub.app import Hub

FEATURES = (
    "hub.sale",  # catalogue, check-in, cart, sale commit (issue 4)
    "hub.devices",  # scales, scanners, printers, payment terminals (issue 6)
    "hub.state_channel",  # outbox to Metrc / BioTrack, pulls, receiving, reconciliation (issue 5)
    "hub.backoffice",  # drawers, reports, counts, cash compliance, back office (issue 7)
    "hub.orders",  # online orders, the menu feed, handheld picking, notices, pickup (issue 14)
    "hub.customers",  # customer records, consent, loyalty ledger, CRM bridge, retention purge (issue 16)
    "hub.catalogue",  # live catalogue: products, prices, promotions, imports, labels, lab results (issue 16)
    "hub.chain",  # events to HQ over NATS JetStream, catalogue and prices from HQ (issue 17)
)


def install(hub: Hub, *, demo_options: dict[str, Any] | None = None) -> None:
    for name in FEATURES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that feature is not part of this build yet
            raise
        module.install(hub, demo_options)
    if demo_options is not None:
        from hub import demo

        previous = hub._setup

        async def setup(h: Hub) -> None:
            if previous is not None:
                r = previous(h)
                if hasattr(r, "__await__"):
                    await r
            await trio.to_thread.run_sync(demo.seed_demo, h.store, h.config)

        hub._setup = setup
