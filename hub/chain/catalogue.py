"""Catalogue, prices and promotions from headquarters: one document per store, applied by version.

HQ owns the catalogue and prices; the store owns its inventory, sales and drawers. HQ publishes each store's
effective document (chain-wide settings merged with that store's own) as one key of a JetStream KV bucket;
the store applies a document only if its version is newer than the one it runs, in one write transaction
that also records the new version and an audit entry (which in turn ships to HQ: HQ sees which version
each store runs). When HQ is away the store keeps selling on the version it has.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import lmdb
import msgspec

from hub import audit
from hub.domain.catalog import Product
from hub.domain.promotions import Promotion
from hub.store.env import Store, decode, encode, tget
from hub.store.keys import text

from .events import CATALOGUE_DOC_KEY, CATALOGUE_VERSION_KEY


class CatalogueDoc(msgspec.Struct, kw_only=True):
    chain: str
    store: str
    version: int
    products: list[dict[str, Any]] = []  # full Product definitions of SKUs HQ defines
    prices: dict[str, int] = {}  # product id -> price in cents (per unit, or per gram when sold by weight)
    promotions: list[dict[str, Any]] | None = None  # None: the store's own promotions stay
    published_at: datetime | None = None


class Applied(msgspec.Struct, kw_only=True):
    version: int
    products: list[Product]
    promotions: tuple[Promotion, ...] | None


def check(doc: CatalogueDoc) -> tuple[list[Product], tuple[Promotion, ...] | None]:
    """Validate the whole document before anything is written (a bad document is refused whole)."""
    products = [msgspec.convert(p, Product) for p in doc.products]
    for pid, cents in doc.prices.items():
        if not isinstance(cents, int) or cents < 0:
            raise ValueError(f"price of {pid}: {cents!r} is not a whole number of cents")
    promos = None if doc.promotions is None else tuple(msgspec.convert(p, Promotion) for p in doc.promotions)
    return products, promos


def applied_version(txn: lmdb.Transaction, store: Store) -> int:
    raw = txn.get(CATALOGUE_VERSION_KEY, db=store.db("meta"))
    return 0 if raw is None else int(bytes(raw))


def apply(txn: lmdb.Transaction, store: Store, doc: CatalogueDoc) -> Applied | None:
    """Apply ``doc`` in the writer's transaction; None when this store already runs that version or newer."""
    if doc.version <= applied_version(txn, store):
        return None
    products, promos = check(doc)
    changed: dict[str, Product] = {}
    for p in products:
        changed[p.id] = p
    for pid, cents in doc.prices.items():
        current = changed.get(pid) or tget(txn, store, "products", text(pid), Product)
        if current is None:
            continue  # a price for a product this store does not carry
        if current.price_cents != cents:
            changed[pid] = msgspec.structs.replace(current, price_cents=cents)
    for p in changed.values():
        txn.put(text(p.id), encode(p), db=store.db("products"))
        if p.barcode:
            txn.put(text(p.barcode), text(p.id), db=store.db("product_barcodes"))
    meta = store.db("meta")
    txn.put(CATALOGUE_VERSION_KEY, str(doc.version).encode(), db=meta)
    txn.put(CATALOGUE_DOC_KEY, encode(doc), db=meta)
    audit.append(
        txn,
        store,
        "chain_catalogue_applied",
        detail={
            "version": doc.version,
            "products": len(changed),
            "promotions": -1 if promos is None else len(promos),
        },
    )
    return Applied(version=doc.version, products=list(changed.values()), promotions=promos)


def stored_doc(store: Store) -> CatalogueDoc | None:
    with store.env.begin(buffers=True) as txn:
        raw = txn.get(CATALOGUE_DOC_KEY, db=store.db("meta"))
        return None if raw is None else decode(raw, CatalogueDoc)
