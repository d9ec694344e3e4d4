"""HQ's side of the catalogue: prices, products and promotions set chain-wide (scope ``*``) or per store,
each change a new catalogue version; every store's effective document is published to its KV key.

A change commits in PostgreSQL first and is published after; at start HQ publishes the current version
again (a store ignores a version it already runs), so a crash between the two loses nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from hub.chain.catalogue import CatalogueDoc, check
from hub.domain.catalog import Product
from hub.domain.promotions import Promotion

CHAIN_WIDE = "*"


class CatalogueError(ValueError):
    pass


async def _new_version(conn: Any, user: str, note: str) -> int:
    cur = await conn.execute(
        "INSERT INTO catalogue_versions (version, by_user, note)"
        " SELECT COALESCE(max(version), 0) + 1, %s, %s FROM catalogue_versions RETURNING version",
        (user, note),
    )
    row = await cur.fetchone()
    return int(row[0])


async def current_version(conn: Any) -> int:
    cur = await conn.execute("SELECT COALESCE(max(version), 0) FROM catalogue_versions")
    row = await cur.fetchone()
    return int(row[0])


def _scope(scope: str, stores: list[str]) -> str:
    if scope != CHAIN_WIDE and scope not in stores:
        raise CatalogueError(f"scope {scope!r}: neither '*' (chain-wide) nor a store of this chain")
    return scope


async def set_prices(conn: Any, scope: str, prices: dict[str, int], *, user: str, stores: list[str]) -> int:
    _scope(scope, stores)
    for pid, cents in prices.items():
        if not isinstance(cents, int) or isinstance(cents, bool) or cents < 0:
            raise CatalogueError(f"price of {pid}: {cents!r} is not a whole, non-negative number of cents")
    async with conn.transaction():
        await conn.cursor().executemany(
            "INSERT INTO prices (scope, product_id, price_cents) VALUES (%s, %s, %s)"
            " ON CONFLICT (scope, product_id) DO UPDATE SET price_cents = EXCLUDED.price_cents, updated_at = now()",
            [(scope, pid, cents) for pid, cents in prices.items()],
        )
        return await _new_version(conn, user, f"prices ({scope}): {len(prices)}")


async def set_products(conn: Any, products: list[dict[str, Any]], *, user: str) -> int:
    try:
        checked = [msgspec.convert(p, Product) for p in products]
    except msgspec.ValidationError as exc:
        raise CatalogueError(f"product refused: {exc}") from None
    async with conn.transaction():
        await conn.cursor().executemany(
            "INSERT INTO catalogue_products (product_id, doc) VALUES (%s, %s::jsonb)"
            " ON CONFLICT (product_id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()",
            [(p.id, msgspec.json.encode(p).decode()) for p in checked],
        )
        return await _new_version(conn, user, f"products: {len(checked)}")


async def set_promotions(
    conn: Any, scope: str, promotions: list[dict[str, Any]], *, user: str, stores: list[str]
) -> int:
    _scope(scope, stores)
    try:
        for p in promotions:
            msgspec.convert(p, Promotion)
    except msgspec.ValidationError as exc:
        raise CatalogueError(f"promotion refused: {exc}") from None
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO promotions (scope, promotions) VALUES (%s, %s::jsonb) ON CONFLICT (scope)"
            " DO UPDATE SET promotions = EXCLUDED.promotions, updated_at = now()",
            (scope, msgspec.json.encode(promotions).decode()),
        )
        return await _new_version(conn, user, f"promotions ({scope}): {len(promotions)}")


async def document(conn: Any, chain: str, store: str, version: int) -> CatalogueDoc:
    """The store's effective catalogue: chain-wide settings, then the store's own over them."""
    cur = await conn.execute("SELECT doc FROM catalogue_products ORDER BY product_id")
    products = [row[0] for row in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT product_id, price_cents FROM prices WHERE scope IN (%s, %s)"
        " ORDER BY (scope = %s), product_id",
        (CHAIN_WIDE, store, store),
    )
    prices: dict[str, int] = {}
    for pid, cents in await cur.fetchall():
        prices[pid] = int(cents)  # the store's own rows come last and win
    cur = await conn.execute(
        "SELECT promotions FROM promotions WHERE scope IN (%s, %s) ORDER BY (scope = %s) DESC LIMIT 1",
        (CHAIN_WIDE, store, store),
    )
    row = await cur.fetchone()
    doc = CatalogueDoc(
        chain=chain,
        store=store,
        version=version,
        products=products,
        prices=prices,
        promotions=None if row is None else list(row[0]),
        published_at=datetime.now(UTC),
    )
    check(doc)
    return doc


async def publish(conn: Any, kv: Any, chain: str, stores: list[str]) -> int:
    """Put every store's document for the current version into the KV bucket; returns the version."""
    version = await current_version(conn)
    if version == 0:
        return 0
    for store in stores:
        doc = await document(conn, chain, store, version)
        await kv.put(store, msgspec.json.encode(doc))
    return version
