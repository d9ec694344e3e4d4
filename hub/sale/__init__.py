"""The sale at the register: catalogue and inventory in the store, the register's sale commands, the
sale commit, and the register snapshot. ``install(hub)`` wires it into a hub before it starts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import trio

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


def install(
    hub: Hub,
    demo_options: dict[str, Any] | None = None,
    *,
    demo: bool | None = None,
    taxes: dict[str, Any] | None = None,
) -> None:
    demo = demo if demo is not None else demo_options is not None
    from hub.domain.limits.rules import store_jurisdiction
    from hub.domain.tax import TaxTable
    from hub.sale import (  # noqa: F401  (their handlers)
        browse,
        cart,
        checkin,
        demo_api,
        drawer,
        pay,
        receipts,
        reprint,
        void,
    )
    from hub.sale import demo as demo_commands  # noqa: F401  (its handlers)
    from hub.sale import queue as customer_queue  # registers the queue's commands and its scan
    from hub.sale.context import SaleContext, SaleSettings, sale_of
    from hub.sale.inventory import all_products, id_hash_key
    from hub.sale.snapshot import sale_snapshot

    previous = hub._setup

    async def setup(h: Hub) -> None:
        if previous is not None:
            r = previous(h)
            if hasattr(r, "__await__"):
                await r
        cfg = h.config
        jurisdiction = store_jurisdiction(cfg.store.jurisdiction, cfg.store.time_zone)
        table = msgspec.convert(taxes or cfg.taxes or DEFAULT_TAXES, TaxTable)
        from hub.domain.promotions import Promotion

        promos = cfg.promotions or (DEMO_PROMOTIONS if demo else [])
        promotions = tuple(msgspec.convert(p, Promotion) for p in promos)
        key = await trio.to_thread.run_sync(
            lambda: id_hash_key(
                h.store,
                cfg.security.id_hash_key,
                cfg.security.id_hash_key_file,
                warn_beside_data=not cfg.server.demo,
            )
        )
        ctx = SaleContext(h, jurisdiction, SaleSettings(tax_table=table, promotions=promotions), key)
        h.extensions["sale"] = ctx
        if demo:
            await trio.to_thread.run_sync(seed_demo_catalogue, h, ctx)
        for product in all_products(h.store):
            ctx.index.upsert(product)

    hub._setup = setup
    hub.snapshot_providers.append(sale_snapshot)
    hub.snapshot_providers.append(customer_queue.queue_snapshot)
    # the register's sale is loaded before each command, so a failed command rolls back to it
    hub.extensions.setdefault("register_loaders", []).append(sale_of)
    from hub.sale import bank

    provider = bank.provider_from_config(hub.config.pay_by_bank)
    if provider is not None:
        hub.extensions["pay_by_bank"] = provider


def seed_demo_catalogue(hub: Hub, ctx: Any) -> None:
    """Load the demo catalogue, inventory and customers once (a restarted demo keeps its sales)."""
    from hub.domain.demo_catalogue import build_demo_store
    from hub.sale.inventory import id_hash, load_catalogue

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
        hub.extensions["demo_store"] = demo
