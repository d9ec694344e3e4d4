"""The audit log: append-only and hash-chained, so an auditor can prove no record was altered or removed.

Each entry holds the SHA-256 of the previous entry; its own hash covers its content and that link.
Entries are appended inside the same write transaction as the event they record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import lmdb
import msgspec

from hub.store.env import Store, decode, encode, last_key
from hub.store.keys import from_u64, u64

GENESIS = "0" * 64
HEAD_KEY = b"audit_head"


class AuditEntry(msgspec.Struct, kw_only=True):
    seq: int
    at: datetime  # UTC
    action: str  # e.g. login, login_failed, lockout, override, void, drawer_drop
    staff: str = ""  # staff id who did it ("" for the system)
    register: str = ""  # register id it was done from
    detail: dict[str, Any] = {}
    prev_hash: str = GENESIS
    hash: str = ""


def entry_hash(entry: AuditEntry) -> str:
    body = msgspec.structs.replace(entry, hash="")
    # msgpack of a Struct is deterministic (field order fixed); dict keys sorted for stability
    body = msgspec.structs.replace(body, detail=dict(sorted(body.detail.items())))
    return hashlib.sha256(encode(body)).hexdigest()


def append(
    txn: lmdb.Transaction,
    store: Store,
    action: str,
    *,
    staff: str = "",
    register: str = "",
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry in ``txn`` (call from a writer function)."""
    db = store.db("audit")
    k = last_key(txn, store, "audit")
    if k is None:
        seq, prev = 1, GENESIS
    else:
        raw = txn.get(k, db=db)
        assert raw is not None  # the key was just read from this transaction
        prev_entry = decode(raw, AuditEntry)
        seq, prev = prev_entry.seq + 1, prev_entry.hash
    entry = AuditEntry(
        seq=seq,
        at=at or datetime.now(UTC),
        action=action,
        staff=staff,
        register=register,
        detail=detail or {},
        prev_hash=prev,
    )
    entry.hash = entry_hash(entry)
    txn.put(u64(seq), encode(entry), db=db)
    # the head is kept apart so that cutting entries off the end of the chain is also detected
    txn.put(HEAD_KEY, u64(seq) + entry.hash.encode(), db=store.db("meta"))
    return entry


class ChainBreak(msgspec.Struct):
    seq: int
    problem: str


def iter_entries(store: Store, *, start: int = 1) -> Iterator[tuple[int, bytes]]:
    """(key seq, raw value) in key order, copied out so no read txn spans the caller's work."""
    db = store.db("audit")
    next_key = u64(start)
    while True:
        chunk: list[tuple[int, bytes]] = []
        with store.env.begin() as txn, txn.cursor(db=db) as cur:
            if not cur.set_range(next_key):
                break
            for k, v in cur:
                chunk.append((from_u64(k), bytes(v)))
                if len(chunk) >= 1000:
                    break
        if not chunk:
            break
        yield from chunk
        if len(chunk) < 1000:
            break
        next_key = u64(chunk[-1][0] + 1)


def verify(store: Store) -> tuple[int, ChainBreak | None]:
    """Walk the chain; return (entries checked, first break or None)."""
    expected_seq = 1
    prev = GENESIS
    n = 0
    for key_seq, raw in iter_entries(store):
        try:
            entry = decode(raw, AuditEntry)
        except msgspec.DecodeError:
            return n, ChainBreak(seq=key_seq, problem=f"entry {key_seq} cannot be read (altered bytes)")
        if key_seq != expected_seq:
            return n, ChainBreak(
                seq=expected_seq,
                problem=f"entry {expected_seq} is missing (next stored entry is {key_seq}): removed",
            )
        if entry.seq != key_seq:
            return n, ChainBreak(
                seq=key_seq, problem=f"entry {key_seq} claims to be entry {entry.seq}: moved"
            )
        if entry.prev_hash != prev:
            return n, ChainBreak(
                seq=key_seq,
                problem=f"entry {key_seq} does not follow entry {key_seq - 1}: removed, reordered or altered",
            )
        if entry_hash(entry) != entry.hash:
            return n, ChainBreak(seq=key_seq, problem=f"entry {key_seq} was altered after it was written")
        prev = entry.hash
        expected_seq += 1
        n += 1
    with store.env.begin() as txn:
        head = txn.get(HEAD_KEY, db=store.db("meta"))
    if head is not None:
        head_seq, head_hash = from_u64(head[:8]), bytes(head[8:]).decode()
        if head_seq != n:
            return n, ChainBreak(
                seq=n + 1, problem=f"the log ends at entry {n} but entry {head_seq} was written: removed"
            )
        if head_hash != prev:
            return n, ChainBreak(seq=n, problem=f"entry {n} was replaced after it was written")
    elif n:
        return n, ChainBreak(seq=1, problem="the chain head record is missing")
    return n, None
