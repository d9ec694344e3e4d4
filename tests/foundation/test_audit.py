"""The hash-chained audit log: `storehub audit verify` finds and names altered, removed or reordered entries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub import audit
from hub.store.env import Store, decode, encode
from hub.store.keys import u64


def _make_log(path: Path, n: int = 10) -> None:
    store = Store(path, map_size=16 << 20)
    with store.env.begin(write=True) as txn:
        for i in range(n):
            audit.append(txn, store, "drawer_drop", staff="maria", register="R1", detail={"cents": 10000 + i})
    store.close()


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "audit", "verify", "--data", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _tamper(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    store = Store(path)
    with store.env.begin(write=True) as txn:
        fn(txn, store.db("audit"))
    store.close()


def test_intact_chain_verifies(tmp_path: Path) -> None:
    _make_log(tmp_path)
    r = _verify(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "10 entries, chain intact" in r.stdout


def test_altered_entry_named(tmp_path: Path) -> None:
    _make_log(tmp_path)

    def alter(txn, db):  # type: ignore[no-untyped-def]
        e = decode(txn.get(u64(4), db=db), audit.AuditEntry)
        e.detail = {"cents": 1}  # someone shrinks a cash drop after the fact
        txn.put(u64(4), encode(e), db=db)

    _tamper(tmp_path, alter)
    r = _verify(tmp_path)
    assert r.returncode == 1
    assert "entry 4" in r.stdout and "altered" in r.stdout


def test_altered_entry_with_recomputed_hash_named(tmp_path: Path) -> None:
    _make_log(tmp_path)

    def alter(txn, db):  # type: ignore[no-untyped-def]
        e = decode(txn.get(u64(4), db=db), audit.AuditEntry)
        e.staff = "ana"
        e.hash = audit.entry_hash(e)  # a smarter forger fixes the entry's own hash
        txn.put(u64(4), encode(e), db=db)

    _tamper(tmp_path, alter)
    r = _verify(tmp_path)
    assert r.returncode == 1 and "entry 5" in r.stdout  # the next link no longer matches


def test_removed_entry_named(tmp_path: Path) -> None:
    _make_log(tmp_path)
    _tamper(tmp_path, lambda txn, db: txn.delete(u64(6), db=db))
    r = _verify(tmp_path)
    assert r.returncode == 1 and "entry 6 is missing" in r.stdout


def test_removed_last_entry_detected(tmp_path: Path) -> None:
    _make_log(tmp_path)
    _tamper(tmp_path, lambda txn, db: txn.delete(u64(10), db=db))
    r = _verify(tmp_path)
    assert r.returncode == 1 and "removed" in r.stdout


def test_reordered_entries_named(tmp_path: Path) -> None:
    _make_log(tmp_path)

    def swap(txn, db):  # type: ignore[no-untyped-def]
        a, b = bytes(txn.get(u64(3), db=db)), bytes(txn.get(u64(7), db=db))
        ea, eb = decode(a, audit.AuditEntry), decode(b, audit.AuditEntry)
        ea.seq, eb.seq = 7, 3
        txn.put(u64(3), encode(eb), db=db)
        txn.put(u64(7), encode(ea), db=db)

    _tamper(tmp_path, swap)
    r = _verify(tmp_path)
    assert r.returncode == 1 and "entry 3" in r.stdout


def test_garbled_bytes_named(tmp_path: Path) -> None:
    _make_log(tmp_path)
    _tamper(tmp_path, lambda txn, db: txn.put(u64(2), b"\xc1garbage", db=db))
    r = _verify(tmp_path)
    assert r.returncode == 1 and "entry 2" in r.stdout


@pytest.mark.parametrize("n", [0, 1])
def test_small_logs(tmp_path: Path, n: int) -> None:
    _make_log(tmp_path, n)
    assert _verify(tmp_path).returncode == 0
