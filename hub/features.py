"""Which features a hub runs: each feature module adds its handlers, snapshot parts, actors and routes.

The foundation runs with none; the demo adds demo staff and data. Features are installed before the
hub starts so that startup order stays explicit.
"""

from __future__ import annotations

from typing import Any

import trio

from hub.app import Hub


def install(hub: Hub, *, demo_options: dict[str, Any] | None = None) -> None:
    from hub import sale

    sale.install(hub, demo=demo_options is not None)
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
