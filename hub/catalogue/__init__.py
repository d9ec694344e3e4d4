"""The live catalogue (issue 16): products, scheduled prices and promotions changed from the back office
without a restart, promo codes at the register, labels from the jurisdiction's template, lab results
from the state system, imports with a dry run and a progress bar, and the Form 8300 worksheet.

``install(hub)`` wires it into a hub before it starts: routes and commands register on import; after the
sale's setup the stored promotions (seeded once from store.toml) become the live list; a supervised task
applies scheduled price changes when their time comes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from hub.catalogue import promo_codes, rest  # noqa: F401  (routes and commands register on import)
from hub.catalogue.live import LiveCatalogue
from hub.supervisor import ChildSpec

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.supervisor import Supervisor


def install(hub: Hub, demo_options: dict[str, Any] | None = None) -> None:
    live = LiveCatalogue(hub)
    hub.extensions["catalogue"] = live
    previous = hub._setup

    async def setup(h: Hub) -> None:
        if previous is not None:
            r = previous(h)
            if hasattr(r, "__await__"):
                await r
        if "sale" not in h.extensions:
            return
        await trio.to_thread.run_sync(live.seed, h.extensions["sale"].settings.promotions)
        live.reload()

    hub._setup = setup

    async def start(h: Hub, sup: Supervisor) -> None:
        if "sale" in h.extensions:
            await sup.start(ChildSpec(name="catalogue-prices", run=live.run))

    hub.extensions.setdefault("starters", []).append(start)
