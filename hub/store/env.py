"""The store: one LMDB environment with named tables; values are msgspec msgpack Structs.

Reads happen inline on the trio thread (about a microsecond) and never span an ``await``.
Writes go through :class:`hub.store.writer.StoreWriter`, the single writer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import msgspec

from hub.store.commits import Commits
from hub.store.keys import from_u64, u64

T = TypeVar("T")

# The store layout this code writes, kept in ``meta`` under ``schema``. A store without it was written
# before issue 13 (schema 1); hub/store/migrations.py brings an older store to this one on open.
SCHEMA = 5
SCHEMA_KEY = b"schema"


class StoreVersionError(RuntimeError):
    """The store was written by a newer storehub than this one: opening it could lose what it holds."""


# Every table the hub keeps. Adding one is free; renaming one loses its data.
TABLES = (
    "meta",  # schema version, receipt counters, store identity
    "audit",  # u64 seq -> AuditEntry (hash-chained)
    "staff",  # staff id -> StaffMember
    "devices",  # sha256(device token) -> EnrolledDevice
    "pairing_codes",  # sha256 of the code -> PairingCode (the code itself is never stored)
    "replies",  # device id + NUL + message id -> StoredReply (idempotent retries; never a secret)
    "incidents",  # u64 seq -> Incident
    "quarantine",  # u64 seq -> QuarantinedMessage
    "products",
    "product_barcodes",
    "packages",
    "packages_by_product",
    "customers",
    "customers_by_id_hash",
    "ledger",  # customer id + u64 micros + u64 seq -> purchase ledger entry (limits windows)
    "carts",  # register id -> its sale without the open cart (layout.REGISTER_SALES, schema 5)
    "open_carts",  # register id -> its open cart (layout.OPEN_CARTS, schema 5)
    "parked_carts",
    "sales",
    "sales_by_day",
    "outbox",
    "outbox_dead",
    "drawers",
    "drawer_events",  # session id + u64 n -> the session's n-th cash sale (layout.DRAWER_SALES, schema 4)
    "counts",
    "cash_flags",
    "manifests",
    "reconciliations",
    # issue 13: what used to be prefixed keys in the old "kv" table (hub/store/layout.py; a store written
    # before has its "kv" moved and dropped by hub/store/migrations.py)
    "state_refs",  # idempotency key -> the state's id of a sent entry
    "low_marks",  # outbox name -> u64 seq below which nothing is unsent
    "pull_marks",  # "<kind>:<licence>" -> ISO time the last pull of that kind started
    "returns",  # u64 return number -> ReturnRecord
    "returns_by_receipt",  # u64 receipt + u64 return number -> b""
    "returned_stock",  # u64 return number + package tag -> ReturnedStock
    "open_drawers",  # register id -> open drawer session id
    "voids",  # u64 receipt number -> VoidRecord
    "void_intents",  # u64 receipt number -> VoidIntent
    "pending_reversals",  # card reference -> PendingReversal
    # online orders (issue 14): hub/orders/store.py
    "orders",  # order id -> Order
    "orders_by_external",  # channel NUL external id -> order id
    "order_reservations",  # product id -> ProductReservations (what open orders hold)
    "order_callbacks",  # u64 seq -> Delivery (status changes to the channel)
    "notices",  # u64 seq -> Delivery (customer notices)
    "order_replays",  # channel NUL signature -> u64 unix seconds (signatures seen in the skew window)
    "orders_open",  # order id -> b"" for every order not yet closed
    # customers, loyalty and the live catalogue (issue 16)
    "customer_index",  # b"p:" phone hash -> id; b"n:" name token NUL id -> b""
    "loyalty_ledger",  # customer id NUL u64 micros u64 seq -> LoyaltyEntry
    "crm_outbox",  # u64 seq -> OutboxEntry (kinds "customer" and "sale", licence "crm")
    "promotions",  # promotion id -> StoredPromotion
    "price_changes",  # u64 micros(effective) NUL product id -> PriceChange
    "lab_results",  # package tag -> LabResult
)

_encoder = msgspec.msgpack.Encoder()
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode(data: bytes | memoryview, type_: type[T]) -> T:
    dec = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.msgpack.Decoder(type_)
    return dec.decode(data)


class Store:
    """An open LMDB environment and its table handles."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_size: int = 1 << 30,
        durable: bool = True,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(
            str(self.path),
            map_size=map_size,
            max_dbs=len(TABLES) + 8,
            # full durability by default: an acknowledged sale survives power loss
            sync=durable,
            metasync=durable,
            readonly=readonly,
            max_readers=256,
            max_spare_txns=4,
        )
        self.tables: dict[str, Any] = {}
        if readonly:
            # without a txn, py-lmdb opens each handle in its own committed read txn, so the handle
            # outlives it (a handle opened in an explicit read txn is invalid once that txn ends)
            for name in TABLES:
                try:
                    self.tables[name] = self.env.open_db(name.encode(), create=False)
                except lmdb.NotFoundError:
                    pass
        else:
            with self.env.begin() as txn:  # named tables are keys of the main table: none means a new store
                fresh = txn.stat()["entries"] == 0
            for name in TABLES:
                self.tables[name] = self.env.open_db(name.encode())
            if fresh:  # born in today's layout: nothing to migrate, and tools beside the hub may read it
                with self.env.begin(write=True) as txn:
                    txn.put(SCHEMA_KEY, u64(SCHEMA), db=self.tables["meta"])
        self.commits = Commits()
        found = self.schema()
        if found > SCHEMA:
            self.env.close()
            raise StoreVersionError(
                f"The store at {self.path} was written by a newer storehub (store schema {found}; this "
                f"version knows up to {SCHEMA}). Nothing was changed: run the newer version, or restore a "
                "backup made by this one."
            )

    def schema(self) -> int:
        """The layout the store was written in (1: before issue 13, when ``meta`` had no ``schema``)."""
        if "meta" not in self.tables:
            return SCHEMA  # a read-only look at a store that has no meta table yet: nothing to read
        with self.env.begin() as txn:
            raw = txn.get(SCHEMA_KEY, db=self.tables["meta"])
        return 1 if raw is None else from_u64(raw)

    def db(self, table: str) -> Any:
        try:
            return self.tables[table]
        except KeyError:
            raise KeyError(f"no table {table!r} in this store") from None

    # --- reads (inline, short) ---
    def read(self) -> lmdb.Transaction:
        """A read transaction for ``with store.read() as txn:`` (ended by the ``with``). The transaction is
        its own context manager: no generator-based wrapper on every read (a scan makes several)."""
        return self.env.begin(buffers=True)

    def get(self, table: str, key: bytes, type_: type[T]) -> T | None:
        with self.env.begin(buffers=True) as txn:
            raw = txn.get(key, db=self.db(table))
            return None if raw is None else decode(raw, type_)

    def count(self, table: str) -> int:
        with self.env.begin() as txn:
            return int(txn.stat(self.db(table))["entries"])

    def used_bytes(self) -> int:
        info = self.env.info()
        stat = self.env.stat()
        return int((info["last_pgno"] + 1) * stat["psize"])

    @property
    def map_size(self) -> int:
        return int(self.env.info()["map_size"])

    def grow(self) -> int:
        """Double the map. Only call with no transaction open in this process (the writer does, between batches)."""
        new_size = self.map_size * 2
        self.env.set_mapsize(new_size)
        return new_size

    def backup(self, dest: str | os.PathLike[str]) -> Path:
        """A compacted, consistent copy taken while the hub runs (LMDB copy uses a read txn)."""
        d = Path(dest)
        d.mkdir(parents=True, exist_ok=True)
        if any(d.iterdir()):
            raise FileExistsError(f"backup destination {d} is not empty")
        self.env.copy(str(d), compact=True)
        return d

    def close(self) -> None:
        self.env.close()


# --- write-side helpers, used inside writer functions (they run on the writer thread) ---
def put(txn: lmdb.Transaction, store: Store, table: str, key: bytes, value: Any) -> None:
    txn.put(key, encode(value), db=store.db(table))


def tget(txn: lmdb.Transaction, store: Store, table: str, key: bytes, type_: type[T]) -> T | None:
    raw = txn.get(key, db=store.db(table))
    return None if raw is None else decode(raw, type_)


def last_key(txn: lmdb.Transaction, store: Store, table: str) -> bytes | None:
    with txn.cursor(db=store.db(table)) as cur:
        if cur.last():
            return bytes(cur.key())
    return None


def next_seq(txn: lmdb.Transaction, store: Store, table: str) -> int:
    """Next u64 sequence number for a table keyed by big-endian u64."""
    k = last_key(txn, store, table)
    return 1 if k is None else from_u64(k) + 1
