"""The store's catalogue, packages, customers and the per-customer purchase ledger in LMDB.

Layout (keys order the data the way the counter reads it):
- ``products``: product id -> Product; ``product_barcodes``: barcode -> product id
- ``packages``: tag -> Package; ``packages_by_product``: product id NUL tag -> b""
- ``customers``: customer id -> Customer; ``customers_by_id_hash``: keyed ID hash -> customer id
- the purchase ledger is ``hub.store.layout.LEDGER`` (customer id, UTC micros, receipt -> LedgerEntry). A
  limits check scans only from the start of the longest window that applies, so its cost does not grow
  with old history.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import lmdb
import msgspec

from hub.domain.catalog import Customer, Package, Product
from hub.domain.limits.engine import LimitItem
from hub.domain.scan_classify import catalogue_barcode
from hub.store.env import Store, decode, encode, put, tget
from hub.store.keys import joined, micros, text
from hub.store.layout import LEDGER

ID_HASH_KEY = b"id_hash_key"
log = logging.getLogger("hub.sale.inventory")


def id_hash(key: bytes, jurisdiction: str, number: str) -> str:
    """Keyed hash of an ID number: the store can recognise a returning customer, never read the number."""
    return hmac.new(key, f"{jurisdiction}:{number.strip().upper()}".encode(), hashlib.sha256).hexdigest()


def id_hash_key(
    store: Store, configured: str = "", key_file: str = "", *, warn_beside_data: bool = True
) -> bytes:
    """The configured key, else the key file (made at first start, 0600). The key never lives in the store
    beside the hashes it protects: a store from before keeps its key, moved out into the file."""
    if configured:
        return configured.encode()
    path = Path(key_file) if key_file else store.path / "id_hash.key"
    if warn_beside_data and path.resolve().parent in (store.path.resolve(), store.path.resolve().parent):
        log.warning(
            "the ID-hash key %s sits beside the data it protects: a copy of both can test ID numbers; "
            "set security.id_hash_key_file outside the data directory (e.g. /etc/storehub/id_hash.key)",
            path,
        )
    with store.env.begin(write=True) as txn:
        kept = txn.get(ID_HASH_KEY, db=store.db("meta"))
        kept = None if kept is None else bytes(kept)
        if path.exists():
            key = bytes.fromhex(path.read_text().strip())
            if kept is not None and kept != key:
                raise ValueError(
                    f"security.id_hash_key_file: {path} holds another key than the store's own; "
                    "restore the matching key file (customers' ID hashes depend on it)"
                )
        else:
            key = kept if kept is not None else secrets.token_bytes(32)
            _write_key(path, key)
        if kept is not None:
            txn.delete(ID_HASH_KEY, db=store.db("meta"))  # moved out: only after the file is on disk
        return key


def _write_key(path: Path, key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


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


def history(txn: lmdb.Transaction, store: Store, customer_id: str, since: datetime) -> list[LimitItem]:
    """Every non-voided purchase of the customer at or after ``since`` (a range scan, newest last)."""
    out: list[LimitItem] = []
    start = (customer_id, max(micros(since), 0))
    for _, entry in LEDGER.scan(txn, store, (customer_id,), start=start):
        if not entry.voided:
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


def update_package(txn: lmdb.Transaction, store: Store, pkg: Package) -> None:
    """Store a new state (quantity, status) of a package read in this transaction: its product, so its
    entry in ``packages_by_product``, is the one already stored, which is not written again."""
    put(txn, store, "packages", text(pkg.tag), pkg)


def update_customer(txn: lmdb.Transaction, store: Store, c: Customer) -> None:
    """Store a new state (points, last visit) of a customer read in this transaction: the ID hash, so the
    entry in ``customers_by_id_hash``, is the one already stored, which is not written again."""
    put(txn, store, "customers", text(c.id), c)


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


__all__ = ["encode"]
