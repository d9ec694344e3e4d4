"""Customer records in LMDB: the indexes a customer is found by, the purchase (dispensing) history, the
loyalty ledger, merging and purging. Reads are short read transactions; writes run in the writer.

- ``customers``: id -> Customer (``hub.domain.catalog``); ``customers_by_id_hash``: ID hash -> id
- ``customer_index``: ``p:`` phone hash -> id; ``n:`` name token NUL id -> b"" (names only of customers
  who consented to a profile)
- ``loyalty_ledger``: id NUL u64 micros u64 n -> LoyaltyEntry
- ``ledger`` (the limits ledger, ``hub.sale.inventory``) gives the history of receipts per customer
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import lmdb
import msgspec

from hub.domain.catalog import Customer
from hub.domain.customers import fold, name_tokens
from hub.domain.loyalty import LoyaltyEntry
from hub.domain.receipt import SaleRecord
from hub.sale.inventory import put_customer
from hub.store.env import Store, decode, encode, tget
from hub.store.keys import joined, micros, text, u64
from hub.store.layout import LEDGER

PHONE = b"p:"
NAME = b"n:"


# ---- reads ----
def customer(store: Store, customer_id: str) -> Customer | None:
    return store.get("customers", text(customer_id), Customer)


def resolve(store: Store, customer_id: str) -> Customer | None:
    """The record, following a merged duplicate to the record it was folded into."""
    c = customer(store, customer_id)
    seen = 0
    while c is not None and c.merged_into and seen < 5:
        c = customer(store, c.merged_into)
        seen += 1
    return c


def by_id_hash(store: Store, hashed: str) -> Customer | None:
    with store.read() as txn:
        cid = txn.get(text(hashed), db=store.db("customers_by_id_hash"))
    return resolve(store, bytes(cid).decode()) if cid is not None else None


def by_phone_hash(store: Store, hashed: str) -> Customer | None:
    with store.read() as txn:
        cid = txn.get(PHONE + text(hashed), db=store.db("customer_index"))
    return resolve(store, bytes(cid).decode()) if cid is not None else None


def by_name(store: Store, query: str, limit: int = 20) -> list[Customer]:
    """Customers whose name has every word of ``query`` as a prefix of one of its words."""
    terms = name_tokens(query)
    if not terms:
        return []
    found: set[str] | None = None
    with store.read() as txn, txn.cursor(db=store.db("customer_index")) as cur:
        for term in terms:
            ids: set[str] = set()
            prefix = NAME + text(term)
            if cur.set_range(prefix):
                for k in cur.iternext(values=False):
                    kb = bytes(k)
                    if not kb.startswith(prefix):
                        break
                    ids.add(kb.rsplit(b"\x00", 1)[1].decode())
            found = ids if found is None else found & ids
            if not found:
                return []
    out = [c for cid in sorted(found or ()) if (c := customer(store, cid)) is not None and not c.merged_into]
    out.sort(key=lambda c: (fold(c.family_name), fold(c.display_name), c.id))
    return out[:limit]


def all_customers(store: Store) -> list[Customer]:
    with store.read() as txn:
        return [decode(v, Customer) for _, v in txn.cursor(db=store.db("customers"))]


def history(store: Store, customer_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The customer's purchases, newest first: receipt, time, lines (product, package tag, quantity),
    total; voided and returned sales marked. For a medical patient this is the dispensing history."""
    rows: list[dict[str, Any]] = []
    with store.read() as txn:
        sales = store.db("sales")
        for _, entry in LEDGER.scan(txn, store, (customer_id,)):
            raw = txn.get(u64(entry.receipt_number), db=sales)
            if raw is None:
                continue
            sale = decode(raw, SaleRecord)
            r = sale.receipt
            rows.append(
                {
                    "receipt_number": r.receipt_number,
                    "sold_at": r.sold_at.isoformat(),
                    "register_id": r.register_id,
                    "customer_type": r.customer_type,
                    "total_cents": r.total_cents,
                    "voided": entry.voided or sale.voided,
                    "returned": entry.returned,
                    "lines": [
                        {
                            "product": ln.name,
                            "package_tag": ln.package_tag,
                            "quantity": ln.quantity,
                            "weight_mg": ln.weight_mg,
                            "total_cents": ln.total_cents,
                        }
                        for ln in r.lines
                    ],
                }
            )
    rows.reverse()
    return rows[:limit]


def loyalty_entries(store: Store, customer_id: str, limit: int = 100) -> list[LoyaltyEntry]:
    prefix = text(customer_id) + b"\x00"
    out: list[LoyaltyEntry] = []
    with store.read() as txn, txn.cursor(db=store.db("loyalty_ledger")) as cur:
        if cur.set_range(prefix):
            for k, v in cur:
                if not bytes(k).startswith(prefix):
                    break
                out.append(decode(v, LoyaltyEntry))
    out.reverse()
    return out[:limit]


# ---- writes (inside the writer's transaction) ----
def _index_keys(c: Customer) -> list[bytes]:
    keys: list[bytes] = []
    if c.phone_hash:
        keys.append(PHONE + text(c.phone_hash))
    if c.consent_to_retain and not c.merged_into:
        for tok in name_tokens(c.display_name, c.family_name):
            keys.append(joined(NAME + text(tok), text(c.id)))
    return keys


def save(txn: lmdb.Transaction, store: Store, c: Customer, before: Customer | None = None) -> None:
    """Store a customer and keep the indexes in step with it."""
    db = store.db("customer_index")
    if before is not None:
        for k in _index_keys(before):
            if k.startswith(PHONE):
                cur = txn.get(k, db=db)
                if cur is None or bytes(cur).decode() != before.id:
                    continue
            txn.delete(k, db=db)
    put_customer(txn, store, c)
    for k in _index_keys(c):
        txn.put(k, text(c.id) if k.startswith(PHONE) else b"", db=db)


def add_loyalty_entry(txn: lmdb.Transaction, store: Store, entry: LoyaltyEntry, n: int = 0) -> None:
    key = joined(text(entry.customer_id), u64(micros(entry.at)) + u64(entry.receipt_number * 16 + n))
    txn.put(key, encode(entry), db=store.db("loyalty_ledger"))


def move_ledger(txn: lmdb.Transaction, store: Store, src: str, dst: str) -> int:
    """A merged duplicate's purchases count for the kept record (limits windows, history)."""
    moved = list(LEDGER.scan(txn, store, (src,)))
    for (_, at, receipt), entry in moved:
        LEDGER.delete(txn, store, (src, at, receipt))
        LEDGER.put(txn, store, (dst, at, receipt), entry)
    return len(moved)


def delete_prefixed(txn: lmdb.Transaction, store: Store, table: str, customer_id: str) -> int:
    prefix = text(customer_id) + b"\x00"
    db = store.db(table)
    keys: list[bytes] = []
    with txn.cursor(db=db) as cur:
        if cur.set_range(prefix):
            for k in cur.iternext(values=False):
                if not bytes(k).startswith(prefix):
                    break
                keys.append(bytes(k))
    for k in keys:
        txn.delete(k, db=db)
    return len(keys)


def purge(txn: lmdb.Transaction, store: Store, customer_id: str) -> dict[str, int] | None:
    """Remove a customer: the record, its indexes, its purchase ledger and loyalty ledger. The sales stay
    (financial records, kept 7 years in CA under 4 CCR 15037) with the now meaningless customer id."""
    c = tget(txn, store, "customers", text(customer_id), Customer)
    if c is None:
        return None
    db = store.db("customer_index")
    for k in _index_keys(c):
        cur = txn.get(k, db=db)
        if k.startswith(PHONE) and (cur is None or bytes(cur).decode() != c.id):
            continue
        txn.delete(k, db=db)
    if c.id_hash:
        cur = txn.get(text(c.id_hash), db=store.db("customers_by_id_hash"))
        if cur is not None and bytes(cur).decode() == c.id:
            txn.delete(text(c.id_hash), db=store.db("customers_by_id_hash"))
    txn.delete(text(c.id), db=store.db("customers"))
    return {
        "purchases": LEDGER.delete_prefix(txn, store, (c.id,)),
        "loyalty_entries": delete_prefixed(txn, store, "loyalty_ledger", c.id),
    }


INDEXED = b"customer_index_v1"


def index_existing(store: Store) -> int:
    """Once per store: index the records kept before the index existed (imports, the demo's seed), so
    consented customers are found by name. Runs at start, before the writer takes requests from staff."""
    with store.env.begin(write=True) as txn:
        if txn.get(INDEXED, db=store.db("meta")) is not None:
            return 0
        n = 0
        db = store.db("customer_index")
        for _, v in txn.cursor(db=store.db("customers")):
            for k in _index_keys(decode(v, Customer)):
                if not k.startswith(PHONE):
                    txn.put(k, b"", db=db)
                    n += 1
        txn.put(INDEXED, b"1", db=store.db("meta"))
        return n


def touch_visit(txn: lmdb.Transaction, store: Store, customer_id: str, at: datetime) -> Customer | None:
    c = tget(txn, store, "customers", text(customer_id), Customer)
    if c is None:
        return None
    updated = msgspec.structs.replace(c, last_visit_at=at)
    put_customer(txn, store, updated)
    return updated
