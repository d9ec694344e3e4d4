"""The single writer: group commit, answer only after the data is readable, one bad request fails alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import outcome
import pytest
import trio
import trio.testing

from hub.store.env import Store
from hub.store.keys import u64
from hub.store.writer import StoreWriter


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "db", map_size=64 << 20)
    yield s
    s.close()


async def test_thousand_concurrent_writes_group_commit(store: Store) -> None:
    writer = StoreWriter(store, max_batch=512)
    db = store.db("incidents")
    visible_when_answered: list[bool] = []

    async def one(i: int) -> None:
        def fn(txn: lmdb.Transaction) -> int:
            txn.put(u64(i), b"sale-%d" % i, db=db)
            return i

        assert await writer.write(fn) == i
        # the answer means durable and readable from a fresh read txn
        with store.env.begin() as txn:
            visible_when_answered.append(txn.get(u64(i), db=db) == b"sale-%d" % i)

    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(30):
            async with trio.open_nursery() as clients:
                for i in range(1000):
                    clients.start_soon(one, i)
        n.cancel_scope.cancel()
    assert len(visible_when_answered) == 1000 and all(visible_when_answered)
    assert writer.requests == 1000
    assert writer.batches <= 100, f"{writer.batches} transactions for 1000 requests"
    assert store.count("incidents") == 1000


async def test_invalid_request_fails_alone(store: Store) -> None:
    writer = StoreWriter(store)
    db = store.db("incidents")
    results: dict[int, object] = {}

    async def one(i: int) -> None:
        def fn(txn: lmdb.Transaction) -> int:
            txn.put(u64(i), b"x", db=db)
            if i == 7:
                raise ValueError("package 7 is on hold")
            return i

        try:
            results[i] = await writer.write(fn)
        except ValueError as exc:
            results[i] = exc

    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(10):
            async with trio.open_nursery() as clients:
                for i in range(20):
                    clients.start_soon(one, i)
        n.cancel_scope.cancel()
    assert isinstance(results[7], ValueError)
    assert all(results[i] == i for i in range(20) if i != 7)
    with store.env.begin() as txn:
        assert txn.get(u64(7), db=db) is None  # its partial write was rolled back
        assert txn.get(u64(8), db=db) == b"x"


async def test_map_full_grows_and_commits(tmp_path: Path) -> None:
    store = Store(tmp_path / "small", map_size=1 << 20)
    writer = StoreWriter(store)
    db = store.db("incidents")
    big = b"z" * 4000

    def fn(txn: lmdb.Transaction) -> None:
        for i in range(600):  # ~2.4 MB: more than the 1 MiB map
            txn.put(u64(i), big, db=db)

    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(20):
            await writer.write(fn)
        n.cancel_scope.cancel()
    assert store.map_size > 1 << 20
    assert store.count("incidents") == 600
    store.close()


def test_stored_replies_are_pruned_after_a_day(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    import msgspec

    from hub.live.replies import StoredReply, prune_replies, reply_key

    now = datetime.now(UTC)
    with store.env.begin(write=True) as txn:
        for i, age in enumerate((timedelta(hours=30), timedelta(hours=2))):
            txn.put(
                reply_key("R1", f"m{i}"),
                msgspec.msgpack.encode(StoredReply(at=now - age, frame=b"{}")),
                db=store.db("replies"),
            )
        assert prune_replies(txn, store, now - timedelta(hours=24)) == 1
    with store.env.begin() as txn:
        assert txn.get(reply_key("R1", "m0"), db=store.db("replies")) is None
        assert txn.get(reply_key("R1", "m1"), db=store.db("replies")) is not None


async def test_write_behind_keeps_order_and_flush_drains(store: Store) -> None:
    writer = StoreWriter(store)
    db = store.db("incidents")
    landed: list[int] = []

    async with trio.open_nursery() as n:
        await n.start(writer.run)
        for i in range(50):
            await writer.write_behind(
                lambda txn, i=i: txn.put(b"cart", b"%d" % i, db=db), on_done=lambda _o, i=i: landed.append(i)
            )
        # an awaited write queued after them commits after them
        await writer.write(lambda txn: txn.put(b"sale", b"done", db=db))
        with store.env.begin() as txn:
            assert txn.get(b"cart", db=db) == b"49"
        await writer.write_behind(lambda txn: txn.put(b"cart", b"last", db=db))
        assert await writer.flush()
        n.cancel_scope.cancel()
    assert landed == list(range(50))
    with store.env.begin() as txn:
        assert txn.get(b"cart", db=db) == b"last"


async def test_write_behind_requests_linger_into_one_commit(store: Store) -> None:
    """A register scanning at full speed costs one commit (one worker-thread hop) per linger, not one per
    scan; an awaited write ends the wait and commits with them, in order."""
    writer = StoreWriter(store, linger=30.0)  # longer than the test: only the awaited write ends it
    db = store.db("incidents")
    async with trio.open_nursery() as n:
        await n.start(writer.run)
        for i in range(20):
            await writer.write_behind(lambda txn, i=i: txn.put(b"cart", b"%d" % i, db=db))
            await trio.lowlevel.checkpoint()
        assert writer.batches == 0  # still gathering: nothing committed, nothing lost either
        with trio.fail_after(5):
            await writer.write(lambda txn: txn.put(b"sale", b"done", db=db))
        assert writer.batches == 1 and writer.last_batch_sizes == [21]
        n.cancel_scope.cancel()
    with store.env.begin() as txn:
        assert txn.get(b"cart", db=db) == b"19" and txn.get(b"sale", db=db) == b"done"


async def test_an_awaited_write_does_not_linger(store: Store) -> None:
    writer = StoreWriter(store, linger=30.0)
    db = store.db("incidents")
    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(5):
            await writer.write(lambda txn: txn.put(b"sale", b"1", db=db))
        n.cancel_scope.cancel()
    assert writer.batches == 1


async def test_a_failing_write_behind_fails_alone_though_it_runs_unnested(store: Store) -> None:
    """A write-behind request runs in the batch's own transaction (no nested one); when one fails after
    all, the batch runs again with every request nested: its half-done writes are gone, the others land."""
    writer = StoreWriter(store, linger=0.05)
    db = store.db("incidents")
    heard: list[str] = []

    def half_done(txn: lmdb.Transaction) -> None:
        txn.put(b"half", b"done", db=db)
        raise ValueError("a bug after its first put")

    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(10):
            await writer.write_behind(lambda txn: txn.put(b"cart-1", b"a", db=db))
            await writer.write_behind(
                half_done, on_done=lambda o: heard.append(type(o.error).__name__ if o.error else "ok")
            )
            await writer.write_behind(lambda txn: txn.put(b"cart-2", b"b", db=db))
            assert await writer.write(lambda txn: txn.put(b"sale", b"c", db=db) and 7) == 7
            assert await writer.flush()
        n.cancel_scope.cancel()
    assert heard == ["ValueError"]
    with store.env.begin() as txn:
        assert txn.get(b"half", db=db) is None
        assert (txn.get(b"cart-1", db=db), txn.get(b"cart-2", db=db), txn.get(b"sale", db=db)) == (
            b"a",
            b"b",
            b"c",
        )


async def test_write_behind_queues_without_a_trip_through_the_scheduler(store: Store) -> None:
    """A cart save with room in the mailbox is queued at once: no other task runs meanwhile (it used to
    await a channel send, one yield per scan)."""
    writer = StoreWriter(store, linger=30.0)
    db = store.db("incidents")
    others_ran: list[bool] = []
    async with trio.open_nursery() as n:
        await n.start(writer.run)

        async def other() -> None:
            others_ran.append(True)

        n.start_soon(other)  # runnable: it runs at this task's next yield
        for i in range(100):
            await writer.write_behind(lambda txn, i=i: txn.put(b"cart", b"%d" % i, db=db))
        assert others_ran == []
        with trio.fail_after(5):
            await writer.write(lambda txn: txn.put(b"sale", b"1", db=db))
        n.cancel_scope.cancel()
    assert others_ran == [True] and writer.requests == 101


async def test_no_event_per_request(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """An awaited write parks its task until the commit and a write-behind one is told by its callback:
    neither builds a trio.Event (one per request showed in the profile)."""
    made: list[int] = []
    real_event = trio.Event

    def counted_event() -> trio.Event:
        made.append(1)
        return real_event()

    writer = StoreWriter(store, linger=0.001)
    db = store.db("incidents")
    async with trio.open_nursery() as n:
        await n.start(writer.run)
        monkeypatch.setattr(trio, "Event", counted_event)
        with trio.fail_after(10):
            for i in range(20):
                await writer.write_behind(lambda txn, i=i: txn.put(u64(i), b"c", db=db))
                assert await writer.write(lambda txn, i=i: (txn.put(u64(100 + i), b"s", db=db), i)[1]) == i
        monkeypatch.undo()
        n.cancel_scope.cancel()
    assert made == []
    assert store.count("incidents") == 40


async def test_a_cancelled_write_still_commits_and_the_writer_goes_on(store: Store) -> None:
    writer = StoreWriter(store)
    db = store.db("incidents")
    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.CancelScope() as cs:
            cs.cancel()
            await writer.write(lambda txn: txn.put(b"given-up", b"1", db=db))
        assert cs.cancelled_caught
        with trio.fail_after(5):
            assert await writer.write(lambda txn: txn.put(b"next", b"2", db=db) and 2) == 2
        n.cancel_scope.cancel()
    with store.env.begin() as txn:
        assert txn.get(b"given-up", db=db) == b"1" and txn.get(b"next", db=db) == b"2"


async def test_saves_of_one_state_in_a_batch_write_only_the_newest(store: Store) -> None:
    """Five saves of R1's cart and two of R2's queued behind in one batch: each cart is written once (its
    newest state), every save's reply is stored and every save hears its outcome. A sale between two saves
    ends the folding (it may read the cart), so the save before it is written too."""
    writer = StoreWriter(store, linger=30.0)
    carts, replies = store.db("carts"), store.db("replies")
    ran: list[str] = []
    heard: list[str] = []

    def save(reg: str, n: int) -> Callable[[lmdb.Transaction], None]:
        def fn(txn: lmdb.Transaction) -> None:
            ran.append(f"{reg}:{n}")
            txn.put(reg.encode(), b"%d" % n, db=carts)

        return fn

    def sale(txn: lmdb.Transaction) -> bytes | None:
        ran.append("sale")
        return txn.get(b"R1", db=carts)

    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(10):
            seq = [("R1", 1), ("R2", 1), ("R1", 2), ("R1", 3), ("R2", 2), ("R1", 4)]
            for reg, i in seq:
                await writer.write_behind(
                    save(reg, i),
                    put=(replies, f"{reg}/m{i}".encode(), b"ok"),
                    state_key=("carts", reg),
                    on_done=lambda o, t=f"{reg}:{i}": heard.append(t),
                )
            sale_saw: list[bytes | None] = []

            async def sell() -> None:
                sale_saw.append(await writer.write(sale))

            n.start_soon(sell)
            await trio.testing.wait_all_tasks_blocked()  # the sale is queued after R1:4
            await writer.write_behind(
                save("R1", 5), put=(replies, b"R1/m5", b"ok"), state_key=("carts", "R1")
            )
            assert await writer.flush()
            assert sale_saw == [b"4"]  # the sale read the save queued before it
        n.cancel_scope.cancel()
    assert ran == ["R2:2", "R1:4", "sale", "R1:5"]
    assert heard == ["R1:1", "R2:1", "R1:2", "R1:3", "R2:2", "R1:4"]
    with store.env.begin() as txn:
        assert txn.get(b"R1", db=carts) == b"5" and txn.get(b"R2", db=carts) == b"2"
        stored = [k for k, _ in txn.cursor(db=replies)]
    assert sorted(stored) == sorted([f"{r}/m{i}".encode() for r, i in seq] + [b"R1/m5"])


async def test_a_failing_save_is_not_folded_over(store: Store) -> None:
    """When the newest save of a state fails, the batch runs again nested and unfolded: the earlier save
    (already acknowledged to its register) lands, the failing one fails alone."""
    writer = StoreWriter(store, linger=30.0)
    carts, replies = store.db("carts"), store.db("replies")
    heard: list[str] = []

    def broken(txn: lmdb.Transaction) -> None:
        txn.put(b"R1", b"half", db=carts)
        raise ValueError("a bug after its first put")

    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(10):
            await writer.write_behind(
                lambda txn: txn.put(b"R1", b"1", db=carts),
                put=(replies, b"R1/m1", b"ok"),
                state_key=("carts", "R1"),
                on_done=lambda o: heard.append("m1 " + ("failed" if isinstance(o, outcome.Error) else "ok")),
            )
            await writer.write_behind(
                broken,
                put=(replies, b"R1/m2", b"ok"),
                state_key=("carts", "R1"),
                on_done=lambda o: heard.append("m2 " + ("failed" if isinstance(o, outcome.Error) else "ok")),
            )
            await writer.write(lambda txn: None)
        n.cancel_scope.cancel()
    assert heard == ["m1 ok", "m2 failed"]
    with store.env.begin() as txn:
        assert txn.get(b"R1", db=carts) == b"1"
        assert txn.get(b"R1/m1", db=replies) == b"ok" and txn.get(b"R1/m2", db=replies) is None


async def test_a_full_batch_of_write_behind_requests_does_not_linger(store: Store) -> None:
    writer = StoreWriter(store, linger=30.0, max_batch=10)
    db = store.db("incidents")
    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(5):
            for i in range(10):
                await writer.write_behind(lambda txn, i=i: txn.put(u64(i), b"c", db=db))
            while writer.batches == 0:
                await trio.sleep(0.001)
        assert writer.last_batch_sizes == [10]
        n.cancel_scope.cancel()


async def test_the_sweep_prunes_old_replies_in_small_commits(store: Store) -> None:
    """The hub's housekeeping deletes replies older than a day a step at a time, each step its own small
    commit (the old one-transaction prune held every sale while it read the whole table)."""
    from datetime import UTC, datetime, timedelta

    import msgspec

    from hub.live.replies import StoredReply, expired_before, reply_key

    now = datetime.now(UTC)
    db = store.db("replies")
    ages = {f"m{i:02d}": timedelta(hours=30 if i % 3 == 0 else 2) for i in range(30)}
    with store.env.begin(write=True) as txn:
        for msg_id, age in ages.items():
            reply = StoredReply(at=now - age, frame=b"{}", fingerprint=b"f")
            txn.put(reply_key("R1", msg_id), msgspec.msgpack.encode(reply), db=db)
    writer = StoreWriter(store)
    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(10):
            gone = await writer.sweep("replies", expired_before(now - timedelta(hours=24)), step=4)
        n.cancel_scope.cancel()
    assert gone == 10
    assert 3 <= writer.batches <= 8 and max(writer.last_batch_sizes) == 1  # one small commit per step
    with store.env.begin() as txn:
        kept = {bytes(k) for k, _ in txn.cursor(db=db)}
    assert kept == {reply_key("R1", m) for m, age in ages.items() if age < timedelta(hours=24)}


async def test_a_running_hub_prunes_replies_older_than_a_day(hub_factory: Any, config: Any) -> None:
    """A store that sells for a year keeps a day of replies, not every scan's: the housekeeping sweeps on
    start (and hourly). Replies stored before this hub started, one 30 h old, one 2 h old."""
    from datetime import UTC, datetime, timedelta

    import msgspec

    from hub.live.replies import StoredReply, reply_key
    from hub.store.migrations import open_store

    now = datetime.now(UTC)
    before = open_store(config.data_dir)
    with before.env.begin(write=True) as txn:
        for msg_id, age in (("old", timedelta(hours=30)), ("young", timedelta(hours=2))):
            reply = StoredReply(at=now - age, frame=b"{}")
            txn.put(reply_key("R1", msg_id), msgspec.msgpack.encode(reply), db=before.db("replies"))
    before.close()
    hub = await hub_factory(config)
    db = hub.store.db("replies")

    def stored(msg_id: str) -> bool:
        with hub.store.read() as txn:
            return txn.get(reply_key("R1", msg_id), db=db) is not None

    with trio.fail_after(20):
        while stored("old"):
            await trio.sleep(0.05)
    assert stored("young")


@pytest.mark.parametrize("again_because", ["a save fails unnested", "the map is full"])
async def test_a_batch_run_again_fires_only_what_its_last_run_marked(
    store: Store, again_because: str
) -> None:
    """The writer runs a whole batch again after a write-behind request failed unnested or the map filled.
    A request that marked a topic in the aborted run and fails in the run that counts must wake nobody:
    the marks of an aborted run are dropped with its transaction."""
    writer = StoreWriter(store, linger=30.0)
    meta = store.db("meta")
    woken: list[str] = []
    store.commits.listen("box", lambda: woken.append("box"))
    heard: list[str] = []
    runs: list[int] = []

    def marks_then_refuses_when_run_again(txn: lmdb.Transaction) -> None:
        runs.append(1)  # a write that depends on something outside the store, changed by its first run
        txn.put(b"box", b"1", db=meta)
        store.commits.mark("box")
        if len(runs) > 1:
            raise ValueError("refused the second time")

    filled: list[int] = []

    def trigger(txn: lmdb.Transaction) -> None:
        txn.put(b"trigger", b"1", db=meta)
        if again_because == "a save fails unnested":
            raise ValueError("a bug after its first put")
        if not filled:
            filled.append(1)
            raise lmdb.MapFullError("the map is full")

    def hear(name: str) -> Callable[[outcome.Outcome[Any]], None]:
        return lambda o: heard.append(f"{name} {'failed' if isinstance(o, outcome.Error) else 'ok'}")

    async with trio.open_nursery() as n:
        await n.start(writer.run)
        with trio.fail_after(10):
            await writer.write_behind(marks_then_refuses_when_run_again, on_done=hear("marker"))
            await writer.write_behind(trigger, on_done=hear("trigger"))
            assert await writer.flush()
        n.cancel_scope.cancel()
    assert len(runs) > 1 and writer.batches == 1  # run again within its one batch
    trigger_ok = again_because == "the map is full"
    assert heard == ["marker failed", f"trigger {'ok' if trigger_ok else 'failed'}"]
    assert woken == [] and store.commits.generation("box") == 0
    with store.env.begin() as txn:
        assert txn.get(b"box", db=meta) is None
        assert (txn.get(b"trigger", db=meta) is not None) == trigger_ok
