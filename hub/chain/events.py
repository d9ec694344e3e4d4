"""What a store ships to headquarters, read out of its own store.

Design note: the shipped sequence IS the audit log's sequence. Every business event (sale, void, return,
adjustment, receiving, count, drawer movement and close, check-in, state-sync outcome, ...) already appends
an audit entry inside the transaction that commits it (hub/audit.py), numbered without gaps and
hash-chained. So shipping from the audit log needs no second table, no change to any committing
transaction, and HQ can check each store's chain link by link (``prev_hash``). The shipper enriches an entry
with the record it names (the sale's receipt, the void, the return), which are never rewritten after
their commit: the facts shipped are the facts of that transaction, however late they are shipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import lmdb
import msgspec

from hub.audit import AuditEntry
from hub.domain.catalog import Package, Product
from hub.domain.outbox import OutboxEntry
from hub.domain.receipt import SaleRecord
from hub.store.env import Store, decode
from hub.store.keys import text, u64
from hub.store.layout import RETURNS, VOIDS

CATALOGUE_VERSION_KEY = b"chain_catalogue_version"
CATALOGUE_DOC_KEY = b"chain_catalogue"


class ChainEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One committed event of one store, as JetStream carries it (JSON)."""

    store: str
    seq: int  # the store's audit sequence: gap-free, assigned in the committing transaction
    at: datetime
    action: str
    business_date: str  # store-local date of ``at`` (YYYY-MM-DD)
    staff: str = ""
    register: str = ""
    detail: dict[str, Any] = {}
    hash: str = ""
    prev_hash: str = ""
    # the record the entry names, as committed (a sale's SaleRecord, a VoidRecord, a ReturnRecord)
    record: dict[str, Any] | None = None


class StockLine(msgspec.Struct, frozen=True, kw_only=True):
    product_id: str
    name: str
    category: str
    units: int  # on hand, for products sold each
    weight_mg: int  # on hand, for products sold by weight


class StoreStatus(msgspec.Struct, kw_only=True):
    """Latest-wins state, not an event: inventory on hand and the state channel's health at ``audit_seq``."""

    store: str
    audit_seq: int
    at: datetime
    inventory: list[StockLine]
    state_backlog: int
    state_dead_letter: int
    catalogue_version: int


_json = msgspec.json.Encoder()


def encode_json(value: Any) -> bytes:
    return _json.encode(value)


def _enrich(txn: lmdb.Transaction, store: Store, entry: AuditEntry) -> dict[str, Any] | None:
    d = entry.detail
    if entry.action == "sale" and "receipt" in d:
        raw = txn.get(u64(int(d["receipt"])), db=store.db("sales"))
        if raw is not None:
            rec = decode(raw, SaleRecord)
            # the sale as committed: the void flag and the state status change later, and ship as events
            return msgspec.to_builtins(msgspec.structs.replace(rec, voided=False, state_status="pending"))
    elif entry.action == "void" and "receipt" in d:
        void = VOIDS.get(txn, store, int(d["receipt"]))
        if void is not None:
            return msgspec.to_builtins(msgspec.structs.replace(void, state_status="pending"))
    elif entry.action == "return" and "return" in d:
        ret = RETURNS.get(txn, store, int(d["return"]))
        if ret is not None:
            return msgspec.to_builtins(msgspec.structs.replace(ret, state_status="pending"))
    return None


def read_events(store: Store, store_id: str, zone: ZoneInfo, *, after: int, limit: int) -> list[ChainEvent]:
    """The next ``limit`` events after sequence ``after``, in order, from one short read transaction."""
    out: list[ChainEvent] = []
    with store.env.begin(buffers=True) as txn, txn.cursor(db=store.db("audit")) as cur:
        if not cur.set_range(u64(after + 1)):
            return out
        for _k, v in cur:
            entry = decode(v, AuditEntry)
            out.append(
                ChainEvent(
                    store=store_id,
                    seq=entry.seq,
                    at=entry.at,
                    action=entry.action,
                    business_date=entry.at.astimezone(zone).date().isoformat(),
                    staff=entry.staff,
                    register=entry.register,
                    detail=msgspec.to_builtins(entry.detail),
                    hash=entry.hash,
                    prev_hash=entry.prev_hash,
                    record=_enrich(txn, store, entry),
                )
            )
            if len(out) >= limit:
                break
    return out


def last_seq(store: Store) -> int:
    with store.env.begin() as txn:
        return int(txn.stat(store.db("audit"))["entries"])


def catalogue_version(store: Store) -> int:
    meta = store.tables.get("meta")
    if meta is None:
        return 0
    with store.env.begin() as txn:
        raw = txn.get(CATALOGUE_VERSION_KEY, db=meta)
    return 0 if raw is None else int(bytes(raw))


def read_status(store: Store, store_id: str) -> StoreStatus:
    """Inventory on hand per product, the state channel's backlog and dead letters, in one read txn."""
    on_hand: dict[str, list[int]] = {}
    with store.env.begin(buffers=True) as txn:
        seq = int(txn.stat(store.db("audit"))["entries"])
        for _k, v in txn.cursor(db=store.db("packages")):
            pkg = decode(v, Package)
            if pkg.status != "active":
                continue
            on_hand.setdefault(pkg.product_id, []).append(pkg.quantity)
        lines = []
        products = store.db("products")
        for pid, quantities in sorted(on_hand.items()):
            raw = txn.get(text(pid), db=products)
            p = None if raw is None else decode(raw, Product)
            by_weight = p is not None and p.sold_by == "weight"
            lines.append(
                StockLine(
                    product_id=pid,
                    name=p.name if p else pid,
                    category=p.category if p else "",
                    units=0 if by_weight else sum(quantities),
                    weight_mg=sum(quantities) if by_weight else 0,
                )
            )
        backlog = dead = 0
        for _k, v in txn.cursor(db=store.db("outbox")):
            e = decode(v, OutboxEntry)
            if e.state == "dead":
                dead += 1
            elif e.state != "sent":
                backlog += 1
        if "outbox_dead" in store.tables:
            dead += int(txn.stat(store.db("outbox_dead"))["entries"])
        raw_v = txn.get(CATALOGUE_VERSION_KEY, db=store.db("meta"))
        version = 0 if raw_v is None else int(bytes(raw_v))
    return StoreStatus(
        store=store_id,
        audit_seq=seq,
        at=datetime.now(UTC),
        inventory=lines,
        state_backlog=backlog,
        state_dead_letter=dead,
        catalogue_version=version,
    )
