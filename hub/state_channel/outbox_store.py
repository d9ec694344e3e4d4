"""The outbox in LMDB, as the state-sync actor and the back office read and change it.

- ``outbox``: u64 seq -> OutboxEntry. Entries stay after they are sent: the record of what the state got.
- ``outbox_dead``: u64 seq -> b"" for every entry a person must fix (the dead-letter list).
- ``kv`` ``state_sync:low:<licence>``: no entry of that licence below this seq is unsent, so a pass
  scans only the tail of the table and its cost does not grow with the store's history.
- ``kv`` ``state_ref:<idempotency key>``: the state's id for a sent entry (BioTrack transaction ids,
  which a later void or refund needs).

Reads are short read transactions; writes are functions for the single writer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import lmdb
import msgspec

from hub import audit
from hub.backoffice.records import RETURN_PREFIX, VOID_PREFIX
from hub.domain.outbox import OutboxEntry
from hub.domain.receipt import ReturnRecord, SaleRecord, StateStatus, VoidRecord
from hub.domain.state_payloads import StateSale, StateVoid
from hub.store.env import Store, decode, put, tget
from hub.store.keys import from_u64, text, u64


def low_key(licence: str) -> bytes:
    return b"state_sync:low:" + text(licence)


def ref_key(idempotency_key: str) -> bytes:
    return b"state_ref:" + text(idempotency_key)


def low_water(store: Store, licence: str) -> int:
    with store.read() as txn:
        raw = txn.get(low_key(licence), db=store.db("kv"))
        return 0 if raw is None else from_u64(raw)


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
    prefix = b"state_ref:"
    out: dict[str, str] = {}
    with store.read() as txn, txn.cursor(db=store.db("kv")) as cur:
        if cur.set_range(prefix):
            for k, v in cur:
                kb = bytes(k)
                if not kb.startswith(prefix):
                    break
                out[kb[len(prefix) :].decode()] = bytes(v).decode()
    return out


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
            txn.put(ref_key(updated.idempotency_key), text(updated.state_ref), db=store.db("kv"))
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
    record_type: type[SaleRecord | VoidRecord | ReturnRecord]
    try:
        if entry.kind == "sale":
            n = _receipt_number(msgspec.msgpack.decode(entry.payload, type=StateSale).external_receipt_number)
            table, key, record_type = "sales", None if n is None else u64(n), SaleRecord
        elif entry.kind == "void":
            n = _receipt_number(msgspec.msgpack.decode(entry.payload, type=StateVoid).external_receipt_number)
            table, key, record_type = "kv", None if n is None else VOID_PREFIX + u64(n), VoidRecord
        elif entry.kind == "return":
            n = _receipt_number(entry.idempotency_key)  # return-<licence>-<receipt>-<return number>
            table, key, record_type = "kv", None if n is None else RETURN_PREFIX + u64(n), ReturnRecord
        else:
            return
    except msgspec.DecodeError:
        return
    if key is None:
        return
    record = tget(txn, store, table, key, record_type)
    if record is not None and record.state_status != status:
        put(txn, store, table, key, msgspec.structs.replace(record, state_status=status))


def set_low_water(store: Store, licence: str, seq: int) -> Callable[[lmdb.Transaction], None]:
    def fn(txn: lmdb.Transaction) -> None:
        txn.put(low_key(licence), u64(seq), db=store.db("kv"))

    return fn


def retry(store: Store, seq: int, now: datetime, staff: str) -> Callable[[lmdb.Transaction], OutboxEntry]:
    """A person fixed the cause; the dead letter goes back to the queue."""
    from hub.domain.outbox import retry_dead
    from hub.errors import Conflict, NotFound

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
        low = txn.get(low_key(current.licence), db=store.db("kv"))
        if low is not None and from_u64(low) > seq:
            txn.put(low_key(current.licence), u64(seq), db=store.db("kv"))
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
    from hub.domain.state_payloads import StateReturn, biotrack_2014_refund_items

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
