"""The table abstraction: an LMDB table (or a key prefix inside one) with a key codec and a value codec.

A :class:`Table` knows how its keys are laid out and what its values are, so no module builds a key by
hand: ``RETURNS.put(txn, store, 7, record)``, ``LEDGER.scan(txn, store, prefix=(customer_id,))``. The same
calls work in a read transaction (``store.read()``) and in the writer's transaction. Every table of the
hub is declared once, in :mod:`hub.store.layout`.

A table may name a commit topic (``marks``): each write to it marks the topic, and once the writer's batch
holding that write has committed, the topic's generation moves on and its listeners run
(:mod:`hub.store.commits`). That is how the ledger's cache generation follows every ledger write. With
``marks_key`` a write also marks the topic for the key's part it names (the ledger: per customer), so a
cache of one customer's history follows that customer's writes only.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import lmdb

from hub.store.env import Store, decode, encode

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
_U64 = struct.Struct(">Q")


class Codec(Protocol[T]):
    def encode(self, value: T) -> bytes: ...

    def decode(self, raw: bytes) -> T: ...


# ---- key codecs (LMDB's byte order is the logical order: big-endian integers, NUL-separated text) ----


class KeyCodec(Codec[T], Protocol[T]):
    def prefix(self, partial: Any) -> bytes:
        """The bytes every key starting with ``partial`` starts with (for scans)."""
        ...


class TextKey:
    """A UTF-8 string; a scan prefix is a string prefix."""

    def encode(self, value: str) -> bytes:
        return value.encode()

    def decode(self, raw: bytes) -> str:
        return raw.decode()

    def prefix(self, partial: str) -> bytes:
        return partial.encode()


class U64Key:
    """A big-endian unsigned 64-bit integer: numeric order is key order."""

    def encode(self, value: int) -> bytes:
        return _U64.pack(value)

    def decode(self, raw: bytes) -> int:
        return int(_U64.unpack(raw[:8])[0])

    def prefix(self, partial: int) -> bytes:
        return _U64.pack(partial)


class Composite:
    """A tuple key of ``int`` (8 bytes, big-endian) and ``str`` parts. A text part is followed by NUL
    unless it is the last part, so the first parts of a tuple are a prefix of every key that has them."""

    def __init__(self, *parts: type) -> None:
        assert parts and all(p in (int, str) for p in parts)
        self.parts = parts

    def encode(self, value: tuple[Any, ...]) -> bytes:
        assert len(value) == len(self.parts), value
        return self._encode(value)

    def prefix(self, partial: tuple[Any, ...]) -> bytes:
        assert len(partial) <= len(self.parts), partial
        return self._encode(partial)

    def _encode(self, value: tuple[Any, ...]) -> bytes:
        out = bytearray()
        last = len(self.parts) - 1
        for i, (kind, v) in enumerate(zip(self.parts, value, strict=False)):
            if kind is int:
                out += _U64.pack(v)
            else:
                b = v.encode()
                if b"\x00" in b:
                    raise ValueError(f"a key part may not contain NUL: {v!r}")
                out += b
                if i < last:  # a partial key ending in text still ends the part: "ann" is not "anna"
                    out += b"\x00"
        return bytes(out)

    def decode(self, raw: bytes) -> tuple[Any, ...]:
        out: list[Any] = []
        pos, last = 0, len(self.parts) - 1
        for i, kind in enumerate(self.parts):
            if kind is int:
                out.append(_U64.unpack(raw[pos : pos + 8])[0])
                pos += 8
            elif i == last:
                out.append(raw[pos:].decode())
            else:
                end = raw.index(b"\x00", pos)
                out.append(raw[pos:end].decode())
                pos = end + 1
        return tuple(out)


# ---- value codecs ----


class Msgpack(Generic[T]):
    """A msgspec Struct (or any msgspec type) as msgpack."""

    def __init__(self, type_: type[T]) -> None:
        self.type = type_

    def encode(self, value: T) -> bytes:
        return encode(value)

    def decode(self, raw: bytes) -> T:
        return decode(raw, self.type)


class TextValue:
    def encode(self, value: str) -> bytes:
        return value.encode()

    def decode(self, raw: bytes) -> str:
        return raw.decode()


class U64Value:
    def encode(self, value: int) -> bytes:
        return _U64.pack(value)

    def decode(self, raw: bytes) -> int:
        return int(_U64.unpack(raw[:8])[0])


class IsoTime:
    """An aware datetime as ISO 8601 text."""

    def encode(self, value: datetime) -> bytes:
        return value.isoformat().encode()

    def decode(self, raw: bytes) -> datetime:
        return datetime.fromisoformat(raw.decode())


class Empty:
    """Presence only: the key is the fact (an index entry)."""

    def encode(self, value: None) -> bytes:
        return b""

    def decode(self, raw: bytes) -> None:
        return None


class Flag:
    """Set once: ``True`` is stored as ``b"1"``."""

    def encode(self, value: bool) -> bytes:
        assert value is True
        return b"1"

    def decode(self, raw: bytes) -> bool:
        return True


class Raw:
    """Bytes as stored (values whose type still lives with the code that writes them)."""

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, raw: bytes) -> bytes:
        return raw


TEXT = TextKey()
U64 = U64Key()


class Table(Generic[K, V]):
    """Keys of one layout in the LMDB table ``db`` (under ``prefix`` when the table is shared)."""

    def __init__(
        self,
        name: str,
        db: str,
        key: KeyCodec[K],
        value: Codec[V],
        *,
        prefix: bytes = b"",
        marks: str | None = None,
        marks_key: Callable[[K], str] | None = None,
    ) -> None:
        self.name = name
        self.db = db
        self.key = key
        self.value = value
        self.prefix = prefix
        self.marks = marks
        self.marks_key = marks_key

    def __repr__(self) -> str:
        return f"Table({self.name!r} in {self.db!r}{' under ' + repr(self.prefix) if self.prefix else ''})"

    def raw_key(self, k: K) -> bytes:
        return self.prefix + self.key.encode(k)

    def _db(self, store: Store) -> Any:
        return store.tables.get(self.db)

    # ---- in a transaction (read or write) ----
    def get(self, txn: lmdb.Transaction, store: Store, k: K) -> V | None:
        db = self._db(store)
        raw = None if db is None else txn.get(self.raw_key(k), db=db)
        return None if raw is None else self.value.decode(bytes(raw))

    def has(self, txn: lmdb.Transaction, store: Store, k: K) -> bool:
        db = self._db(store)
        return db is not None and txn.get(self.raw_key(k), db=db) is not None

    def scan(
        self,
        txn: lmdb.Transaction,
        store: Store,
        prefix: Any = None,
        *,
        start: Any = None,
        reverse: bool = False,
    ) -> Iterator[tuple[K, V]]:
        """Entries in key order (newest first with ``reverse``) whose key starts with ``prefix`` (a
        partial key), from ``start`` (a partial key, forward scans only) on."""
        db = self._db(store)
        if db is None:
            return
        p = self.prefix + (b"" if prefix is None else self.key.prefix(prefix))
        first = p if start is None else self.prefix + self.key.prefix(start)
        n = len(self.prefix)
        with txn.cursor(db=db) as cur:
            if reverse:
                # the first key past the prefix, then step back
                upper = _successor(p)
                if upper is None:
                    positioned = cur.last()
                elif cur.set_range(upper):
                    positioned = cur.prev()
                else:
                    positioned = cur.last()
                if not positioned:
                    return
                items = cur.iterprev()
            else:
                if not cur.set_range(first):
                    return
                items = cur.iternext()
            for kb, vb in items:
                key = bytes(kb)
                if not key.startswith(p):
                    return
                yield self.key.decode(key[n:]), self.value.decode(bytes(vb))

    def keys(self, txn: lmdb.Transaction, store: Store, prefix: Any = None) -> list[K]:
        return [k for k, _ in self.scan(txn, store, prefix)]

    def last(self, txn: lmdb.Transaction, store: Store) -> tuple[K, V] | None:
        return next(self.scan(txn, store, reverse=True), None)

    # ---- in the writer's transaction ----
    def put(self, txn: lmdb.Transaction, store: Store, k: K, v: V) -> None:
        txn.put(self.raw_key(k), self.value.encode(v), db=store.db(self.db))
        if self.marks is not None:
            self._mark(store, k)

    def delete(self, txn: lmdb.Transaction, store: Store, k: K) -> bool:
        gone = bool(txn.delete(self.raw_key(k), db=store.db(self.db)))
        if gone and self.marks is not None:
            self._mark(store, k)
        return gone

    def _mark(self, store: Store, k: K) -> None:
        assert self.marks is not None
        store.commits.mark(self.marks, None if self.marks_key is None else self.marks_key(k))

    def delete_prefix(self, txn: lmdb.Transaction, store: Store, prefix: Any) -> int:
        keys = self.keys(txn, store, prefix)
        for k in keys:
            self.delete(txn, store, k)
        return len(keys)

    # ---- one short read transaction of its own ----
    def read(self, store: Store, k: K) -> V | None:
        with store.read() as txn:
            return self.get(txn, store, k)

    def all(self, store: Store, prefix: Any = None) -> list[V]:
        with store.read() as txn:
            return [v for _, v in self.scan(txn, store, prefix)]


class Cell(Generic[V]):
    """One value at a fixed key of a table (a flag, a low-water mark, a small state)."""

    def __init__(self, name: str, db: str, key: bytes, value: Codec[V]) -> None:
        self.name = name
        self.db = db
        self.key = key
        self.value = value

    def __repr__(self) -> str:
        return f"Cell({self.name!r}: {self.key!r} in {self.db!r})"

    def get(self, txn: lmdb.Transaction, store: Store) -> V | None:
        db = store.tables.get(self.db)
        raw = None if db is None else txn.get(self.key, db=db)
        return None if raw is None else self.value.decode(bytes(raw))

    def put(self, txn: lmdb.Transaction, store: Store, v: V) -> None:
        txn.put(self.key, self.value.encode(v), db=store.db(self.db))

    def delete(self, txn: lmdb.Transaction, store: Store) -> bool:
        return bool(txn.delete(self.key, db=store.db(self.db)))

    def read(self, store: Store) -> V | None:
        with store.read() as txn:
            return self.get(txn, store)


def _successor(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with ``prefix`` (None: there is none)."""
    b = bytearray(prefix)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return None
    b[-1] += 1
    return bytes(b)


__all__ = [
    "TEXT",
    "U64",
    "Cell",
    "Codec",
    "Composite",
    "Empty",
    "Flag",
    "IsoTime",
    "KeyCodec",
    "Msgpack",
    "Raw",
    "Table",
    "TextValue",
    "U64Value",
]
