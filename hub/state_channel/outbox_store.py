"""The outbox in LMDB, as the state-sync actor and the back office read and change it.

- ``outbox``: u64 seq -> OutboxEntry. Entries stay after they are sent: the record of what the state got.
- ``outbox_dead``: u64 seq -> b"" for every entry a person must fix (the dead-letter list).
- ``STATE_LOW`` (hub/store/layout.py), per licence: no entry of that licence below this seq is unsent, so
  a pass scans only the tail of the table and its cost does not grow with the store's history.
- ``STATE_REFS``: the state's id for a sent entry, by idempotency key (BioTrack transaction ids, which a
  later void or refund needs).

:func:`add` is the one way into the outbox: it writes the entry in the caller's transaction and marks the
``state_outbox`` commit topic, so the sender wakes once that transaction commits (hub/store/commits.py),
not before and not if it fails; :func:`retry` puts a dead letter back the same way. Reads are short read transactions; writes are functions for the single
writer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import lmdb
import msgspec

from hub import audit
from hub.domain.outbox import EntryKind, OutboxEntry, retry_dead
from hub.domain.receipt import SaleRecord, StateStatus
from hub.domain.state_payloads import StateReturn, StateSale, StateVoid, biotrack_2014_refund_items
from hub.errors import Conflict, NotFound
from hub.store.env import Store, decode, next_seq, put, tget
from hub.store.keys import from_u64, u64
from hub.store.layout import RETURNS, STATE_LOW, STATE_OUTBOX_TOPIC, STATE_REFS, VOIDS


def add(
    txn: lmdb.Transaction,
    store: Store,
    *,
    kind: EntryKind,
    licence: str,
    key: str,
    payload: bytes,
    labels: tuple[str, ...],
    now: datetime,
) -> OutboxEntry:
    """Add an entry to the state outbox in ``txn``; its sender wakes when ``txn``'s batch commits."""
    seq = next_seq(txn, store, "outbox")
    entry = OutboxEntry(
        seq=seq,
        kind=kind,
        licence=licence,
        idempotency_key=key,
        payload=payload,
        package_labels=labels,
        created_at=now,
        next_attempt_at=now,
    )
    put(txn, store, "outbox", u64(seq), entry)
    store.commits.mark(STATE_OUTBOX_TOPIC)
    return entry


def low_water(store: Store, licence: str) -> int:
    return STATE_LOW.read(store, licence) or 0


def unsent(store: Store, licence: str) -> list[OutboxEntry]:
    """Every entry of ``licence`` not yet accepted by the state (pending, in flight, unknown, dead)."""
    start = low_water(store, licence)
    out: list[OutboxEntry] = []
    with store.read() as txn, txn.cursor(db=store.db("outbox")) as cur:
        if cur.set_range(u64(start)):
            for _, raw in cur:
                entry = decode(raw, OutboxEntry)
                if entry.licence == licence and entry.state != "sent":
                    out.append(entry)
    return out


def entry(store: Store, seq: int) -> OutboxEntry | None:
    return store.get("outbox", u64(seq), OutboxEntry)


def dead_letters(store: Store, licence: str | None = None) -> list[OutboxEntry]:
    out: list[OutboxEntry] = []
    with store.read() as txn, txn.cursor(db=store.db("outbox_dead")) as cur:
        box = store.db("outbox")
        for key in cur.iternext(values=False):
            raw = txn.get(bytes(key), db=box)
            if raw is None:
                continue
            e = decode(raw, OutboxEntry)
            if e.state == "dead" and (licence is None or e.licence == licence):
                out.append(e)
    return out


def refs(store: Store) -> dict[str, str]:
    with store.read() as txn:
        return dict(STATE_REFS.scan(txn, store))


# ---- writes (run by the single writer) ----


def save(store: Store, expected_state: str, updated: OutboxEntry) -> Callable[[lmdb.Transaction], bool]:
    """Store ``updated`` if the stored entry is still in ``expected_state`` (a person may have changed it
    meanwhile, e.g. retried a dead letter; then the person wins). Returns whether it was stored."""

    def fn(txn: lmdb.Transaction) -> bool:
        current = tget(txn, store, "outbox", u64(updated.seq), OutboxEntry)
        if current is None or current.state != expected_state:
            return False
        put(txn, store, "outbox", u64(updated.seq), updated)
        if updated.state == "dead":
            txn.put(u64(updated.seq), b"", db=store.db("outbox_dead"))
            audit.append(
                txn,
                store,
                "state_dead_letter",
                detail={
                    "seq": updated.seq,
                    "kind": updated.kind,
                    "key": updated.idempotency_key,
                    "error": updated.last_error,
                },
            )
        if updated.state == "sent" and updated.state_ref:
            STATE_REFS.put(txn, store, updated.idempotency_key, updated.state_ref)
        if updated.state in _RECORD_STATUS:
            mark_record(txn, store, updated, _RECORD_STATUS[updated.state])
        return True

    return fn


# what the sale's, void's or return's own record says once its outbox entry is settled (the Z report)
_RECORD_STATUS: dict[str, StateStatus] = {"sent": "reported", "dead": "failed", "pending": "pending"}


def _receipt_number(external_receipt_number: str) -> int | None:
    tail = external_receipt_number.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def mark_record(txn: lmdb.Transaction, store: Store, entry: OutboxEntry, status: StateStatus) -> None:
    """Set ``state_status`` on the record the entry reports (a sale, void or return), in the same
    transaction as the entry's new state: the Z report reads it from there."""
    try:
        if entry.kind == "sale":
            n = _receipt_number(msgspec.msgpack.decode(entry.payload, type=StateSale).external_receipt_number)
        elif entry.kind == "void":
            n = _receipt_number(msgspec.msgpack.decode(entry.payload, type=StateVoid).external_receipt_number)
        elif entry.kind == "return":
            n = _receipt_number(entry.idempotency_key)  # return-<licence>-<receipt>-<return number>
        else:
            return
    except msgspec.DecodeError:
        return
    if n is None:
        return
    if entry.kind == "sale":
        sale = tget(txn, store, "sales", u64(n), SaleRecord)
        if sale is not None and sale.state_status != status:
            put(txn, store, "sales", u64(n), msgspec.structs.replace(sale, state_status=status))
    elif entry.kind == "void":
        void = VOIDS.get(txn, store, n)
        if void is not None and void.state_status != status:
            VOIDS.put(txn, store, n, msgspec.structs.replace(void, state_status=status))
    else:
        ret = RETURNS.get(txn, store, n)
        if ret is not None and ret.state_status != status:
            RETURNS.put(txn, store, n, msgspec.structs.replace(ret, state_status=status))


def set_low_water(store: Store, licence: str, seq: int) -> Callable[[lmdb.Transaction], None]:
    def fn(txn: lmdb.Transaction) -> None:
        STATE_LOW.put(txn, store, licence, seq)

    return fn


def retry(store: Store, seq: int, now: datetime, staff: str) -> Callable[[lmdb.Transaction], OutboxEntry]:
    """A person fixed the cause; the dead letter goes back to the queue."""

    def fn(txn: lmdb.Transaction) -> OutboxEntry:
        current = tget(txn, store, "outbox", u64(seq), OutboxEntry)
        if current is None:
            raise NotFound(f"There is no outbox entry {seq}.")
        if current.state != "dead":
            raise Conflict(f"Outbox entry {seq} is {current.state}, not in the dead-letter list.")
        again = retry_dead(current, now)
        put(txn, store, "outbox", u64(seq), again)
        mark_record(txn, store, again, "pending")
        txn.delete(u64(seq), db=store.db("outbox_dead"))
        # the low-water mark may have passed it; an unsent entry must be scanned again
        low = STATE_LOW.get(txn, store, current.licence)
        if low is not None and low > seq:
            STATE_LOW.put(txn, store, current.licence, seq)
        store.commits.mark(STATE_OUTBOX_TOPIC)  # back in the queue: its sender wakes once this commits
        audit.append(
            txn,
            store,
            "state_dead_letter_retry",
            staff=staff,
            detail={"seq": seq, "kind": current.kind, "key": current.idempotency_key},
        )
        return again

    return fn


def returned_before(store: Store, entry: OutboxEntry, sale_number: str) -> dict[str, float]:
    """What the returns of sale ``sale_number`` sent before ``entry`` refunded, per package label, in the
    state's unit (BioTrack: grams or units). Walks back from ``entry`` to the sale, so a return soon after
    its sale reads a handful of entries; only the lookup of a refund whose answer was lost asks."""

    out: dict[str, float] = {}
    with store.read() as txn, txn.cursor(db=store.db("outbox")) as cur:
        if not cur.set_range(u64(entry.seq)):
            cur.last()
        for key, raw in cur.iterprev():
            if from_u64(key) >= entry.seq:
                continue
            e = decode(raw, OutboxEntry)
            if e.kind == "sale" and e.idempotency_key == sale_number:
                break
            if e.kind != "return" or e.state != "sent":
                continue
            ret = decode(e.payload, StateReturn)
            if ret.sale.external_receipt_number != sale_number:
                continue
            for item in biotrack_2014_refund_items(ret):
                out[item["barcodeid"]] = out.get(item["barcodeid"], 0.0) + float(item["quantity"])
    return out
