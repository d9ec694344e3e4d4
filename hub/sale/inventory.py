"""The store's catalogue, packages, customers and the per-customer purchase ledger in LMDB.

Layout (keys order the data the way the counter reads it):
- ``products``: product id -> Product; ``product_barcodes``: barcode -> product id
- ``packages``: tag -> Package; ``packages_by_product``: product id NUL tag -> b""
- ``customers``: customer id -> Customer; ``customers_by_id_hash``: keyed ID hash -> customer id
- ``ledger``: customer id NUL u64(UTC micros) u64(receipt) -> LedgerEntry. A limits check scans only
  from the start of the longest window that applies, so its cost does not grow with old history.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime

import lmdb
import msgspec

from hub.domain.catalog import Customer, Package, Product
from hub.domain.limits.engine import LimitItem
from hub.domain.scan_classify import catalogue_barcode
from hub.store.env import Store, decode, encode, put, tget
from hub.store.keys import joined, micros, text, u64

ID_HASH_KEY = b"id_hash_key"


class LedgerEntry(msgspec.Struct, kw_only=True):
    receipt_number: int
    at: datetime  # UTC
    items: list[LimitItem]
    voided: bool = False
    returned: bool = False


def id_hash(key: bytes, jurisdiction: str, number: str) -> str:
    """Keyed hash of an ID number: the store can recognise a returning customer, never read the number."""
    return hmac.new(key, f"{jurisdiction}:{number.strip().upper()}".encode(), hashlib.sha256).hexdigest()


def id_hash_key(store: Store, configured: str = "") -> bytes:
    """The configured key, else one made for this store at first start and kept in its store."""
    if configured:
        return configured.encode()
    with store.env.begin(write=True) as txn:
        key = txn.get(ID_HASH_KEY, db=store.db("meta"))
        if key is None:
            key = secrets.token_bytes(32)
            txn.put(ID_HASH_KEY, key, db=store.db("meta"))
        return bytes(key)


# ---- reads (inline, short) ----
def product(store: Store, product_id: str) -> Product | None:
    return store.get("products", text(product_id), Product)


def package(store: Store, tag: str) -> Package | None:
    return store.get("packages", text(tag), Package)


def product_by_barcode(store: Store, barcode: str) -> Product | None:
    with store.read() as txn:
        pid = txn.get(text(barcode), db=store.db("product_barcodes"))
        if pid is None:
            return None
        raw = txn.get(bytes(pid), db=store.db("products"))
        return None if raw is None else decode(raw, Product)


def packages_of(store: Store, product_id: str) -> list[Package]:
    prefix = text(product_id) + b"\x00"
    out: list[Package] = []
    with store.read() as txn, txn.cursor(db=store.db("packages_by_product")) as cur:
        pkgs = store.db("packages")
        if cur.set_range(prefix):
            for k in cur.iternext(values=False):
                if not bytes(k).startswith(prefix):
                    break
                raw = txn.get(bytes(k)[len(prefix) :], db=pkgs)
                if raw is not None:
                    out.append(decode(raw, Package))
    return out


def customer_by_hash(store: Store, hashed: str) -> Customer | None:
    with store.read() as txn:
        cid = txn.get(text(hashed), db=store.db("customers_by_id_hash"))
        if cid is None:
            return None
        raw = txn.get(bytes(cid), db=store.db("customers"))
        return None if raw is None else decode(raw, Customer)


def ledger_key(customer_id: str, at: datetime, receipt_number: int) -> bytes:
    return joined(text(customer_id), u64(micros(at)) + u64(receipt_number))


def history(txn: lmdb.Transaction, store: Store, customer_id: str, since: datetime) -> list[LimitItem]:
    """Every non-voided purchase of the customer at or after ``since`` (a range scan, newest last)."""
    prefix = text(customer_id) + b"\x00"
    start = prefix + u64(max(micros(since), 0))
    out: list[LimitItem] = []
    with txn.cursor(db=store.db("ledger")) as cur:
        if cur.set_range(start):
            for k, v in cur:
                if not bytes(k).startswith(prefix):
                    break
                entry = decode(v, LedgerEntry)
                if entry.voided:
                    continue
                out.extend(msgspec.structs.replace(i, at=entry.at) for i in entry.items)
    return out


# ---- writes (inside the writer's transaction) ----
def put_product(txn: lmdb.Transaction, store: Store, p: Product) -> None:
    barcode = catalogue_barcode(p.barcode)  # a scan of a UPC-E looks up its UPC-A
    if barcode != p.barcode:
        p = msgspec.structs.replace(p, barcode=barcode)
    put(txn, store, "products", text(p.id), p)
    if p.barcode:
        txn.put(text(p.barcode), text(p.id), db=store.db("product_barcodes"))


def put_package(txn: lmdb.Transaction, store: Store, pkg: Package) -> None:
    put(txn, store, "packages", text(pkg.tag), pkg)
    txn.put(joined(text(pkg.product_id), text(pkg.tag)), b"", db=store.db("packages_by_product"))


def put_customer(txn: lmdb.Transaction, store: Store, c: Customer) -> None:
    put(txn, store, "customers", text(c.id), c)
    if c.id_hash:
        txn.put(text(c.id_hash), text(c.id), db=store.db("customers_by_id_hash"))


def load_catalogue(
    txn: lmdb.Transaction,
    store: Store,
    products: Iterable[Product] = (),
    packages: Iterable[Package] = (),
    customers: Iterable[Customer] = (),
) -> int:
    n = 0
    for p in products:
        put_product(txn, store, p)
        n += 1
    for pkg in packages:
        put_package(txn, store, pkg)
        n += 1
    for c in customers:
        put_customer(txn, store, c)
        n += 1
    return n


def all_products(store: Store) -> list[Product]:
    with store.read() as txn:
        return [decode(v, Product) for _, v in txn.cursor(db=store.db("products"))]


def package_in_txn(txn: lmdb.Transaction, store: Store, tag: str) -> Package | None:
    return tget(txn, store, "packages", text(tag), Package)


def product_in_txn(txn: lmdb.Transaction, store: Store, product_id: str) -> Product | None:
    return tget(txn, store, "products", text(product_id), Product)


__all__ = ["LedgerEntry", "encode"]
