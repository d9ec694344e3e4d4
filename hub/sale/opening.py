"""Opening the sale once the store is open: the tax table, promotions, the ID hash key, the product index."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from hub.domain.demo_catalogue import build_demo_store
from hub.domain.limits.rules import store_jurisdiction
from hub.domain.promotions import Promotion
from hub.domain.tax import TaxTable
from hub.sale.context import SaleContext, SaleSettings
from hub.sale.inventory import all_products, id_hash, id_hash_key, load_catalogue

if TYPE_CHECKING:
    from hub.app import Hub

# California, the demo store's state: cannabis excise tax 19 % on gross receipts from 1 July 2025
# (R&TC 34011.2, as amended by AB 564 restoring 15 % from 1 Oct 2025 — kept configurable); sales tax by
# the store's district. A store sets its own table in store.toml ([taxes]).
DEFAULT_TAXES = {
    "name": "California example",
    "prices_include_tax": False,
    "rules": [
        {
            "code": "excise",
            "name": "Cannabis excise 15%",
            "rate_ppm": 150_000,
            "applies_to": ["cannabis"],
            "kind": "excise",
        },
        {
            "code": "state",
            "name": "Sales tax 8.75%",
            "rate_ppm": 87_500,
            "applies_to": ["cannabis", "general"],
            "kind": "sales",
            "compounds": True,
        },
    ],
}


# The demo store's promotions (a store writes its own [[promotions]] in store.toml)
DEMO_PROMOTIONS: list[dict[str, Any]] = [
    {
        "kind": "category_percent",
        "id": "topicals-15",
        "name": "Topicals 15% off",
        "category": "topical",
        "percent_bp": 1500,
    },
    {
        "kind": "buy_n_get_one",
        "id": "preroll-b2g1",
        "name": "Pre-rolls: buy 2, get 1 half off",
        "buy": 2,
        "get_percent_bp": 5000,
        "category": "pre-roll",
    },
]


async def open_sale(hub: Hub, *, demo: bool, taxes: dict[str, Any] | None = None) -> SaleContext:
    """The sale's context once the store is open: the jurisdiction's rules, the tax table and promotions
    (the demo's when the store sets none), the ID hash key, and the product index (in the demo, after the
    demo catalogue is seeded)."""

    cfg = hub.config
    jurisdiction = store_jurisdiction(cfg.store.jurisdiction, cfg.store.time_zone)
    table = msgspec.convert(taxes or cfg.taxes or DEFAULT_TAXES, TaxTable)
    promos = cfg.promotions or (DEMO_PROMOTIONS if demo else [])
    promotions = tuple(msgspec.convert(p, Promotion) for p in promos)
    key = await trio.to_thread.run_sync(
        lambda: id_hash_key(
            hub.store,
            cfg.security.id_hash_key,
            cfg.security.id_hash_key_file,
            warn_beside_data=not cfg.server.demo,
        )
    )
    ctx = SaleContext(
        hub.store, hub.config, jurisdiction, SaleSettings(tax_table=table, promotions=promotions), key
    )
    if demo:
        await trio.to_thread.run_sync(seed_demo_catalogue, hub, ctx)
    for product in all_products(hub.store):
        ctx.index.upsert(product)
    return ctx


def seed_demo_catalogue(hub: Hub, ctx: SaleContext) -> None:
    """Load the demo catalogue, inventory and customers once (a restarted demo keeps its sales)."""

    store = hub.store
    with store.env.begin(write=True) as txn:
        if txn.get(b"demo_catalogue", db=store.db("meta")) is not None:
            return
        today = datetime.now(UTC).astimezone(hub.config.zone).date()
        demo = build_demo_store(
            today,
            home_jurisdiction=hub.config.store.jurisdiction,
            id_hasher=lambda j, n: id_hash(ctx.id_key, j, n),
        )
        load_catalogue(txn, store, demo.products, demo.packages, [c.customer for c in demo.customers])
        txn.put(b"demo_catalogue", today.isoformat().encode(), db=store.db("meta"))
        hub.services.demo.store = demo
