"""The upgrade path: migrations that bring a store written by an earlier release to today's layout.

``open_store`` opens the store and runs, in order and inside ONE write transaction, every migration from
the store's ``schema`` (``meta``; a store without one is schema 1, written before issue 13) to
:data:`hub.store.env.SCHEMA`. A migration moves facts from an old layout to a new one and deletes the old
keys, so running it again finds nothing to do; a store that had something moved gets an audit entry
(``store_upgraded``) in the same transaction. The old ``kv`` table of prefixed keys is no table of
today's layout: the migrations open it by name, and drop it once nothing is left in it. Schema 4 moves each
drawer session's cash sales out of its record into rows of their own (``layout.DRAWER_SALES``), the session
keeping running totals. Schema 5 moves each register's open cart out of its sale's row into a row of its
own (``layout.OPEN_CARTS``), so a scan writes the cart, not the whole sale. A store newer than the code refuses to open
(:class:`hub.store.env.StoreVersionError`, raised by ``Store``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lmdb
import msgspec

from hub import audit
from hub.domain.drawer import DrawerSession, fold_cash_sales
from hub.store import layout
from hub.store.env import SCHEMA, Store, StoreVersionError, decode, encode
from hub.store.tables import Cell, Table

log = logging.getLogger("hub.store.migrations")


@dataclass(frozen=True)
class Move:
    """Every ``kv`` key starting with ``old`` goes to ``to``: the rest of the key, rewritten by ``rekey``
    (the old suffix is already the new key's bytes for most layouts), with the value's bytes unchanged."""

    old: bytes
    to: Table[Any, Any] | Cell[Any]
    rekey: Callable[[bytes], bytes] = lambda suffix: suffix

    def apply(self, txn: lmdb.Transaction, store: Store, kv: Any) -> int:
        found: list[tuple[bytes, bytes]] = []
        with txn.cursor(db=kv) as cur:
            if cur.set_range(self.old):
                for k, v in cur:
                    kb = bytes(k)
                    if not kb.startswith(self.old):
                        break
                    found.append((kb, bytes(v)))
        dest = store.db(self.to.db)
        for k, v in found:
            suffix = k[len(self.old) :]
            if isinstance(self.to, Cell):
                assert suffix == b"", k  # a cell's old key is the whole key
                new_key = self.to.key
            else:
                new_key = self.to.prefix + self.rekey(suffix)
            txn.put(new_key, v, db=dest, overwrite=False)  # a value already in the new place is newer
            txn.delete(k, db=kv)
        return len(found)


def _pull_key(suffix: bytes) -> bytes:
    # "packages:<licence>" -> ("packages", licence)
    kind, _, licence = suffix.partition(b":")
    return layout.PULL_MARKS.key.encode((kind.decode(), licence.decode()))


# schema 1 -> 2 (issue 13): the prefixed keys of "kv" that hub/sale does not write go to typed tables
TO_2 = (
    Move(b"state_ref:", layout.STATE_REFS),
    Move(b"state_sync:low:", layout.STATE_LOW),
    Move(b"crm:low", layout.CRM_LOW),
    Move(b"delivery_low:", layout.DELIVERY_LOW),
    Move(b"state_pull:", layout.PULL_MARKS, _pull_key),
    Move(b"state_channel:demo_aligned", layout.DEMO_ALIGNED),
    Move(b"return:", layout.RETURNS),
    Move(b"return_of:", layout.RETURNS_BY_RECEIPT),
    Move(b"returned_stock:", layout.RETURNED_STOCK),
)

# schema 2 -> 3 (issue 13): what hub/sale kept in "kv" goes to its tables; "kv" is left empty and dropped
TO_3 = (
    Move(b"open_drawer:", layout.OPEN_DRAWERS),
    Move(b"void:", layout.VOIDS),
    Move(b"void-intent:", layout.VOID_INTENTS),
    Move(b"reversal:", layout.PENDING_REVERSALS),
    Move(b"customer_queue", layout.CUSTOMER_QUEUE),
)

# KV_MOVES[n] brings schema n + 1 to n + 2 by moving keys out of the old "kv" table
KV_MOVES: tuple[tuple[Move, ...], ...] = (TO_2, TO_3)


def fold_drawer_sales(txn: lmdb.Transaction, store: Store) -> int:
    """Schema 3 -> 4: each drawer session's cash sales leave its record for rows of their own
    (``layout.DRAWER_SALES``), its count and sum kept as running totals; how many sales moved."""
    db = store.db("drawers")
    sessions = [decode(bytes(v), DrawerSession) for _, v in txn.cursor(db=db)]
    moved = 0
    for session in sessions:
        folded, sales = fold_cash_sales(session)
        for n, event in enumerate(sales, start=session.folded_sales + 1):
            layout.DRAWER_SALES.put(txn, store, (session.session_id, n), event)
        if sales:
            txn.put(session.session_id.encode(), encode(folded), db=db)
            moved += len(sales)
    return moved


_FIELDS = msgspec.msgpack.Decoder(dict[str, msgspec.Raw])


def split_open_carts(txn: lmdb.Transaction, store: Store) -> int:
    """Schema 4 -> 5: a register's open cart (with the notice beside it) leaves its sale's row for a row of
    its own (``layout.OPEN_CARTS``); the rest of the sale stays, field for field, byte for byte. How many
    carts moved. The sale is read as its fields' raw msgpack: hub/sale's types are not needed to move it."""
    rows = [
        (bytes(k), _FIELDS.decode(bytes(v))) for k, v in txn.cursor(db=store.db(layout.REGISTER_SALES.db))
    ]
    moved = 0
    for key, fields in rows:
        cart = fields.pop("cart", None)
        if cart is None or bytes(cart) == encode(None):
            continue
        notice = fields.get("notice")
        row = {"cart": cart} if notice is None else {"cart": cart, "notice": notice}
        txn.put(key, encode(row), db=store.db(layout.OPEN_CARTS.db))
        txn.put(key, encode(fields), db=store.db(layout.REGISTER_SALES.db))
        moved += 1
    return moved


# STEPS[n] brings schema n + 1 to n + 2 past the kv moves: (what moved, the step)
STEPS: tuple[tuple[str, Callable[[lmdb.Transaction, Store], int]] | None, ...] = (
    None,
    None,
    (layout.DRAWER_SALES.name, fold_drawer_sales),
    (layout.OPEN_CARTS.name, split_open_carts),
)
assert len(STEPS) == SCHEMA - 1, "every schema below SCHEMA needs its migration"


OLD_KV = b"kv"  # the table of prefixed keys before schema 3


def migrate(txn: lmdb.Transaction, store: Store, found: int) -> dict[str, int]:
    """Run the migrations from schema ``found`` on, in ``txn``; what moved, per destination."""
    moved: dict[str, int] = {}
    try:
        kv = store.env.open_db(OLD_KV, txn=txn, create=False)
    except lmdb.NotFoundError:
        kv = None  # a store made by this version, or upgraded already: nothing to move
    if kv is not None:
        for steps in KV_MOVES[found - 1 :]:
            for step in steps:
                n = step.apply(txn, store, kv)
                if n:
                    moved[step.to.name] = moved.get(step.to.name, 0) + n
        left = txn.stat(kv)["entries"]
        if left:  # no release wrote other keys there: keep what nobody knows, and say so
            log.error("the old kv table keeps %d keys no migration knows; it is left in place", left)
        else:
            txn.drop(kv, delete=True)
    for each in STEPS[found - 1 :]:
        if each is not None:
            name, run = each
            if count := run(txn, store):
                moved[name] = moved.get(name, 0) + count
    layout.SCHEMA_VERSION.put(txn, store, SCHEMA)
    return moved


def upgrade(store: Store) -> dict[str, int]:
    """Bring ``store`` to today's layout (nothing when it is there already); what moved, per table."""
    found = store.schema()
    if found >= SCHEMA:
        return {}
    with store.env.begin(write=True) as txn:
        moved = migrate(txn, store, found)
        if moved:
            audit.append(
                txn,
                store,
                "store_upgraded",
                detail={"from_schema": found, "to_schema": SCHEMA, "moved": moved},
            )
    if moved:
        log.warning("store upgraded from schema %d to %d: %s", found, SCHEMA, moved)
    else:
        log.info("store marked as schema %d (it was %d; nothing to move)", SCHEMA, found)
    return moved


def open_for_reading(path: str | os.PathLike[str], **options: Any) -> Store:
    """Open the store read-only for a tool beside the hub (reports, the chain link). A store still in an older
    layout is refused, not misread: the facts it keeps in old places would silently be missing."""
    store = Store(path, readonly=True, **options)
    found = store.schema()
    if found < SCHEMA:
        store.close()
        raise StoreVersionError(
            f"The store at {path} is in an older layout (store schema {found}; this version reads {SCHEMA}). "
            "Start the hub on it once (storehub run upgrades it as it opens), then try again."
        )
    return store


def open_store(path: str | os.PathLike[str], **options: Any) -> Store:
    """Open (or create) the store at ``path`` and upgrade it to today's layout."""
    store = Store(path, **options)
    try:
        upgrade(store)
    except BaseException:
        store.close()
        raise
    return store
