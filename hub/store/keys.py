"""Key encodings that make LMDB's byte order the logical order: big-endian integers, fixed-width prefixes."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

_U64 = struct.Struct(">Q")


def u64(n: int) -> bytes:
    return _U64.pack(n)


def from_u64(b: bytes | memoryview) -> int:
    return _U64.unpack(bytes(b[:8]))[0]


def text(s: str) -> bytes:
    return s.encode("utf-8")


def micros(at: datetime) -> int:
    """UTC microseconds since the epoch: the time part of time-ordered keys."""
    if at.tzinfo is None:
        raise ValueError("naive datetime in a store key; use UTC-aware datetimes")
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def joined(*parts: bytes) -> bytes:
    """Composite key: variable-width parts separated by NUL (text parts must not contain NUL)."""
    return b"\x00".join(parts)
