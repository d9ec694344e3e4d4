"""Idempotent replies: the stored reply of each (register, message id), its fingerprint, and what is in flight.

A command that changes the store stores its reply in the same transaction under the register and message id
(``hub.commands.Request.commit``), so a retried id (after a reconnect) is answered from it and never applied
twice. A retried id must carry the same command: the fingerprint (type and body, without the id) tells.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from hub.errors import Conflict
from hub.live.frames import Command
from hub.store.keys import joined, text

if TYPE_CHECKING:
    import lmdb
    import trio  # an annotation only: hub.live.session imports this module without trio

    from hub.store.env import Store


class StoredReply(msgspec.Struct):
    at: datetime
    frame: bytes
    # what the command was (type and body): a retried id must be the same command to get this reply
    fingerprint: bytes = b""


_stored_reply = msgspec.msgpack.Decoder(StoredReply)


class _Stamp(msgspec.Struct):
    at: datetime  # a StoredReply read for its time alone (the frame is skipped, not copied)


_stamp = msgspec.msgpack.Decoder(_Stamp)
_encoder = msgspec.msgpack.Encoder()


def encode_stored_reply(frame: bytes, fp: bytes) -> bytes:
    """The stored form of a reply frame, stamped now (pruning keeps it for ``REPLY_RETENTION``)."""
    return _encoder.encode(StoredReply(at=datetime.now(UTC), frame=frame, fingerprint=fp))


def reply_key(register_id: str, msg_id: str) -> bytes:
    return joined(text(register_id), text(msg_id))


def expired_before(cutoff: datetime) -> Callable[[bytes | memoryview], bool]:
    """Whether a stored reply (its raw value) was stored before ``cutoff``: it only serves retries of recent
    messages, so the hub deletes it (``StoreWriter.sweep`` in the hub's housekeeping)."""

    def expired(raw: bytes | memoryview) -> bool:
        return _stamp.decode(raw).at < cutoff

    return expired


def prune_replies(txn: lmdb.Transaction, store: Store, cutoff: datetime, limit: int = 50_000) -> int:
    """Delete, inside ``txn``, up to ``limit`` stored replies older than ``cutoff`` (a tool's one-off
    clean-up; the running hub sweeps in small steps instead)."""
    db = store.db("replies")
    expired = expired_before(cutoff)
    old: list[bytes] = []
    with txn.cursor(db=db) as cur:
        for k, v in cur:
            if expired(v):
                old.append(bytes(k))
                if len(old) >= limit:
                    break
    for k in old:
        txn.delete(k, db=db)
    return len(old)


def fingerprint(msg: Command) -> bytes:
    """The command without its id: its type and body, canonically encoded and hashed."""
    return hashlib.sha256(msgspec.json.encode(msgspec.structs.replace(msg, id="-"))).digest()[:16]


class Replies:
    """The replies the hub can answer a retried id from: those stored in LMDB, those acknowledged before
    their commit landed (write-behind cart edits), and the ids being applied right now."""

    def __init__(self) -> None:
        # (register, message id) being applied now: a retry of the same id waits for it, then reads the reply
        self.in_flight: dict[tuple[str | None, str], trio.Event] = {}
        # replies of write-behind commands whose commit has not landed yet (see Request.commit_behind)
        self.pending: dict[bytes, tuple[bytes, bytes]] = {}  # key -> (frame, fingerprint)

    def landed(self, key: bytes, _outcome: object) -> None:
        """A write-behind reply's commit landed (or failed): from now on it is read from the store."""
        self.pending.pop(key, None)

    def find(self, store: Store, register_id: str, msg_id: str) -> tuple[bytes, bytes] | None:
        """The reply frame stored (or pending) for this id and its command's fingerprint, if any."""
        key = reply_key(register_id, msg_id)
        pending = self.pending.get(key)
        if pending is not None:
            return pending
        with store.env.begin(buffers=True) as txn:  # one read per command: the env's own, no wrapper
            raw = txn.get(key, db=store.db("replies"))
            if raw is None:
                return None
            stored = _stored_reply.decode(raw)
        return stored.frame, stored.fingerprint

    def lookup(self, store: Store, register_id: str, msg_id: str, fp: bytes = b"") -> bytes | None:
        """The stored reply of ``msg_id`` if it was this same command (see :func:`same_command`)."""
        found = self.find(store, register_id, msg_id)
        if found is None:
            return None
        same_command(msg_id, fp, found[1])
        return found[0]


def same_command(msg_id: str, fp: bytes, stored_fp: bytes) -> None:
    """A different command under a used id is refused, never answered with the first command's reply
    (the client would think it was done)."""
    if fp and stored_fp and fp != stored_fp:
        raise Conflict(
            f"The id {msg_id!r} was already used for another command; send this one with a new id.",
            code="id_reused",
            field="id",
        )
