"""The live catalogue (issue 16): products, scheduled prices and promotions changed from the back office
without a restart, promo codes at the register, labels from the jurisdiction's template, lab results
from the state system, imports with a dry run and a progress bar, and the Form 8300 worksheet.

hub/wiring.py wires it: routes and commands register on import; after the sale's setup (``attach_to_sale``) the stored promotions (seeded once from store.toml) become the live list; a supervised task
applies scheduled price changes when their time comes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from hub.catalogue import promo_codes, rest  # noqa: F401  (routes and commands register on import)
from hub.catalogue.live import LiveCatalogue
from hub.supervisor import ChildSpec, Supervisor

if TYPE_CHECKING:
    from hub.sale.service import SaleContext


async def attach_to_sale(live: LiveCatalogue, sale: SaleContext) -> None:
    """The stored promotions (seeded once from store.toml) become the live list."""
    await trio.to_thread.run_sync(live.seed, sale.settings.promotions)
    live.reload()


async def start(sup: Supervisor, live: LiveCatalogue) -> None:
    """Scheduled price changes are applied when their time comes."""
    await sup.start(ChildSpec(name="catalogue-prices", run=live.run))
