"""The table abstraction (hub/store/tables.py) and commit topics (hub/store/commits.py) in the writer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import lmdb
import pytest
import trio

from hub.customers import records as customer_records
from hub.domain.ledger import LedgerEntry
from hub.store import commits as commits_module
from hub.store import layout
from hub.store.env import Store
from hub.store.keys import joined, micros, text, u64
from hub.store.tables import TEXT, U64, Composite, Msgpack, Table, TextValue
from hub.store.writer import StoreWriter


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data", map_size=16 << 20)
    yield s
    s.close()


def test_composite_keys_are_the_release_layouts_byte_for_byte() -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    # the ledger key hub/sale builds by hand today (inventory.ledger_key)
    assert layout.LEDGER.raw_key(("c-1", micros(at), 7)) == joined(text("c-1"), u64(micros(at)) + u64(7))
    assert layout.LEDGER.key.decode(layout.LEDGER.raw_key(("c-1", micros(at), 7))) == ("c-1", micros(at), 7)
    assert layout.RETURNS_BY_RECEIPT.raw_key((3, 9)) == u64(3) + u64(9)
    assert layout.RETURNED_STOCK.raw_key((3, "1A4")) == u64(3) + b"1A4"
    # schema 3 (issue 13): the release's "open_drawer:R1" and "void:<u64>" of kv, without the prefix, in
    # their own tables (the migration keeps the rest of the key as it was)
    assert layout.OPEN_DRAWERS.raw_key("R1") == b"R1" and layout.OPEN_DRAWERS.db == "open_drawers"
    assert layout.VOIDS.raw_key(2) == u64(2) and layout.VOIDS.db == "voids"
    assert layout.REPLIES.raw_key(("R1", "m-1")) == joined(text("R1"), text("m-1"))  # live.replies.reply_key
    with pytest.raises(ValueError):
        Composite(str, int).encode(("a\x00b", 1))


def test_scans_stay_inside_their_prefix_and_order(store: Store) -> None:
    people: Table[tuple[str, int], str] = Table("t", "meta", Composite(str, int), TextValue(), prefix=b"t:")
    other: Table[str, str] = Table("o", "meta", TEXT, TextValue(), prefix=b"u:")
    with store.env.begin(write=True) as txn:
        for who, n in (("ann", 2), ("ann", 1), ("anna", 1), ("bob", 5)):
            people.put(txn, store, (who, n), f"{who}{n}")
        other.put(txn, store, "ann", "not a person")
    with store.read() as txn:
        assert people.keys(txn, store, ("ann",)) == [("ann", 1), ("ann", 2)]  # "anna" is not "ann"
        assert [v for _, v in people.scan(txn, store, ("ann",), reverse=True)] == ["ann2", "ann1"]
        assert [v for _, v in people.scan(txn, store, ("ann",), start=("ann", 2))] == ["ann2"]
        assert [k for k, _ in people.scan(txn, store)] == [("ann", 1), ("ann", 2), ("anna", 1), ("bob", 5)]
        assert people.last(txn, store) == (("bob", 5), "bob5")
        assert people.get(txn, store, ("bob", 5)) == "bob5" and people.get(txn, store, ("bob", 6)) is None
    with store.env.begin(write=True) as txn:
        assert people.delete_prefix(txn, store, ("ann",)) == 2
    assert people.all(store) == ["anna1", "bob5"] and other.all(store) == ["not a person"]


def test_a_table_missing_from_a_read_only_store_reads_as_empty(tmp_path: Path) -> None:
    Store(tmp_path / "d").close()
    ro = Store(tmp_path / "d", readonly=True)
    ghost: Table[int, str] = Table("ghost", "no_such_table", U64, TextValue())
    assert ghost.read(ro, 1) is None and ghost.all(ro) == []
    ro.close()


async def test_topics_fire_after_the_commit_and_only_for_requests_that_committed(store: Store) -> None:
    writer = StoreWriter(store)
    seen: list[tuple[str, bytes | None]] = []
    during: list[int] = []
    box: Table[int, str] = Table("box", "meta", U64, TextValue(), prefix=b"box:")

    def look() -> None:  # on the trio thread, after the commit: the write is there to read
        seen.append(("wake", None if (v := box.read(store, 1)) is None else v.encode()))

    stop = store.commits.listen("box", look)

    def add(txn: lmdb.Transaction) -> None:
        box.put(txn, store, 1, "one")
        store.commits.mark("box")
        during.append(len(seen))  # how many wakes had happened while this request ran

    def add_then_fail(txn: lmdb.Transaction) -> None:
        box.put(txn, store, 2, "two")
        store.commits.mark("box")
        raise ValueError("refused")

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        with pytest.raises(ValueError):
            await writer.write(add_then_fail)
        assert seen == [] and store.commits.generation("box") == 0  # a failed request wakes nobody
        await writer.write(add)
        assert during == [0]  # not before the commit
        assert seen == [("wake", b"one")] and store.commits.generation("box") == 1
        stop()
        await writer.write(add)
        assert len(seen) == 1 and store.commits.generation("box") == 2
        nursery.cancel_scope.cancel()


async def test_a_batch_that_fails_to_commit_fires_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = StoreWriter(store)
    woken: list[str] = []
    store.commits.listen("box", lambda: woken.append("box"))

    def add(txn: lmdb.Transaction) -> None:
        txn.put(b"box", b"1", db=store.db("meta"))
        store.commits.mark("box")

    real = writer._run_batch

    def disk_full(batch: list) -> None:  # type: ignore[type-arg]
        real(batch)  # the requests ran and marked; then the commit itself fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_run_batch", disk_full)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        with pytest.raises(Exception, match="disk is full"):
            await writer.write(add)
        assert woken == [] and store.commits.generation("box") == 0
        nursery.cancel_scope.cancel()


async def test_every_ledger_write_moves_the_ledger_generation(store: Store) -> None:
    """A purchase-ledger write through its table (a sale, a customer merge, a purge) moves the generation
    the limits caches key on, once its batch has committed."""
    writer = StoreWriter(store)
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    entry = LedgerEntry(receipt_number=1, at=at, items=[])

    def gen() -> int:
        return store.commits.generation(layout.LEDGER_TOPIC)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.write(lambda txn: layout.LEDGER.put(txn, store, ("dup", micros(at), 1), entry))
        assert gen() == 1
        await writer.write(lambda txn: customer_records.move_ledger(txn, store, "dup", "kept"))
        assert gen() == 2
        with store.read() as txn:
            assert layout.LEDGER.keys(txn, store, ("kept",)) == [("kept", micros(at), 1)]
        await writer.write(lambda txn: layout.LEDGER.delete_prefix(txn, store, ("kept",)))
        assert gen() == 3
        await writer.write(lambda txn: layout.LEDGER.delete_prefix(txn, store, ("nobody",)))
        assert gen() == 3  # nothing written, nothing stale
        nursery.cancel_scope.cancel()


async def test_a_ledger_write_moves_its_customers_generation_only(store: Store) -> None:
    """The limits caches of one customer follow that customer's ledger writes (a sale, a void, a merge,
    a purge), not the writes for anybody else."""
    writer = StoreWriter(store)
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    entry = LedgerEntry(receipt_number=1, at=at, items=[])

    def gen(customer: str) -> int:
        return store.commits.generation(layout.LEDGER_TOPIC, customer)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        a, b = gen("a"), gen("b")
        await writer.write(lambda txn: layout.LEDGER.put(txn, store, ("a", micros(at), 1), entry))
        assert gen("a") != a and gen("b") == b
        a = gen("a")
        await writer.write(lambda txn: layout.LEDGER.put(txn, store, ("b", micros(at), 2), entry))
        assert gen("a") == a and gen("b") != b
        b = gen("b")
        with pytest.raises(ValueError):  # a failed request marks nothing

            def fail(txn: lmdb.Transaction) -> None:
                layout.LEDGER.put(txn, store, ("a", micros(at), 3), entry)
                raise ValueError("refused")

            await writer.write(fail)
        assert gen("a") == a
        await writer.write(lambda txn: customer_records.move_ledger(txn, store, "b", "a"))  # a merge
        assert gen("a") != a and gen("b") != b
        nursery.cancel_scope.cancel()


def test_forgotten_keyed_generations_never_answer_a_value_they_had() -> None:
    """Keyed generations are bounded: when the oldest are forgotten, an unknown key answers a value no
    earlier answer for it held, so a cache entry made before is a miss, never a stale hit."""
    c = commits_module.Commits()
    seen = {"k0": [c.generation("t", "k0")]}
    c.fire([commits_module.keyed("t", "k0")])
    seen["k0"].append(c.generation("t", "k0"))
    assert seen["k0"][1] != seen["k0"][0]
    for i in range(1, commits_module.KEYED_KEPT + 5):  # more keys than are kept: k0 is forgotten
        c.fire([commits_module.keyed("t", f"k{i}")])
    now = c.generation("t", "k0")
    assert now >= seen["k0"][-1]  # never back
    c.fire([commits_module.keyed("t", "k0")])
    assert c.generation("t", "k0") not in (*seen["k0"], now)  # a write always moves it
    assert c.generation("t") == 0  # the plain topic was not marked


def test_msgpack_values_round_trip(store: Store) -> None:
    t: Table[str, LedgerEntry] = Table("l", "meta", TEXT, Msgpack(LedgerEntry), prefix=b"l:")
    e = LedgerEntry(receipt_number=3, at=datetime(2026, 1, 1, tzinfo=UTC), items=[], voided=True)
    with store.env.begin(write=True) as txn:
        t.put(txn, store, "x", e)
    assert t.read(store, "x") == e
