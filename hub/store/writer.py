"""The single LMDB writer: group commit.

Every write request is a function ``fn(txn) -> result`` run inside the writer's transaction. The writer
drains its mailbox, runs the whole batch inside ONE ``trio.to_thread.run_sync`` call (LMDB write txns must
stay on their thread), each awaited request in its own nested transaction so an invalid request fails alone,
then commits once (one fsync for the batch) and only then answers every requester. A write-behind request
(a cart being saved: puts that cannot fail) runs in the batch's transaction itself, without a nested one of
its own; should one fail after all, the batch is run again from the start with every request nested, so it
still fails alone. The commit topics the batch's successful requests marked (:mod:`hub.store.commits`) fire
once the commit has landed, before the requesters hear it; a batch that fails fires nothing. Several
saves of one state (a register's cart) queued behind in one batch write only the newest, each still storing
its reply.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import lmdb
import outcome
import trio

from hub.errors import StorageError
from hub.store.env import Store

log = logging.getLogger("hub.store.writer")
R = TypeVar("R")


class WriteRequest:
    """One write: ``fn(txn)`` run in the writer's transaction, then ``put`` (table, key, value) if given.

    An awaited request (:meth:`StoreWriter.write`) parks its task (``waiter``) until the commit, with no
    ``trio.Event`` of its own; a write-behind one (``behind``) is answered through ``on_done``. A write-behind
    request with a ``state_key`` writes the whole of one state under that key (a register's cart): when a
    later one with the same key follows it in the same batch, its ``fn`` is skipped (see
    :func:`superseded`), its ``put`` (the stored reply) is not."""

    __slots__ = ("fn", "label", "on_done", "result", "marks", "behind", "waiter", "put", "state_key")

    def __init__(
        self,
        fn: Callable[[lmdb.Transaction], Any],
        label: str,
        on_done: Callable[[outcome.Outcome[Any]], None] | None = None,
        *,
        behind: bool = False,
        put: tuple[Any, bytes, bytes] | None = None,
        state_key: Hashable | None = None,
    ) -> None:
        self.fn = fn
        self.label = label
        self.on_done = on_done
        self.behind = behind  # queued by write_behind: nobody awaits its commit
        self.put = put
        self.state_key = state_key
        self.result: outcome.Outcome[Any] | None = None
        self.marks: frozenset[str] = frozenset()
        self.waiter: trio.lowlevel.Task | None = None  # the task parked in write() until the commit


def superseded(batch: list[WriteRequest]) -> set[int]:
    """The positions in ``batch`` of write-behind requests whose state a later one writes whole before
    anything else runs: only the newest state is needed, so their ``fn`` is skipped.

    Only across a run of keyed write-behind requests: any other request between two saves of one state (a
    sale, which may read or delete that cart) ends the run, so it still sees the earlier save."""
    skip: set[int] = set()
    later: set[Hashable] = set()
    for i in range(len(batch) - 1, -1, -1):
        req = batch[i]
        key = req.state_key
        if key is None or not req.behind:
            later.clear()
        elif key in later:
            skip.add(i)
        else:
            later.add(key)
    return skip


class WriterStopped(RuntimeError):
    pass


class _NestAll(Exception):  # noqa: N818 - a signal inside the writer, never seen outside it
    """A write-behind request run without its own nested transaction failed: its half-done writes are in
    the batch's transaction, which is abandoned and run again with every request nested."""


DISK_FULL = (
    "The hub's disk is full: nothing was saved. Selling resumes by itself once space is freed; "
    "tell the manager."
)


def as_storage_error(exc: BaseException) -> StorageError:
    """The one place that turns a failed commit into the hub's own error (by class and errno, never by
    the text): full (disk or map) or failed."""
    full = isinstance(exc, lmdb.MapFullError | lmdb.DiskError) or (
        isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    )
    if full:
        err = StorageError(DISK_FULL, code="storage_full")
    else:
        err = StorageError(
            f"The hub could not save this ({type(exc).__name__}): nothing was kept. Tell the manager.",
            code="storage_error",
        )
    err.__cause__ = exc
    return err


LINGER_SECONDS = 0.02
"""How long a batch of write-behind requests alone waits for more before it commits: a register scanning
at full speed then costs one commit (and one worker-thread hop) per few tens of milliseconds, not one per
scan. An awaited write ends the wait at once."""


class StoreWriter:
    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 512,
        mailbox_size: int = 4096,
        metrics: Any = None,
        linger: float = LINGER_SECONDS,
    ):
        self.store = store
        self.max_batch = max_batch
        self.linger = linger
        self.metrics = metrics
        self._send, self._recv = trio.open_memory_channel[WriteRequest](mailbox_size)
        self._limiter = trio.CapacityLimiter(1)
        self.batches = 0
        self.requests = 0
        self._busy = False
        self._wake = trio.lowlevel.ParkingLot()  # the writer waiting for more write-behind requests
        self._lingering = False
        self._nest_all = False  # the batch being committed runs every request nested (see _NestAll)
        self._unfinished = 0  # requests sent and not yet answered (a request handed straight to the
        # waiting writer task is in no buffer, so the channel's depth alone cannot tell a flush it is done)
        self.last_batch_sizes: list[int] = []
        # the last commit failed for lack of space or a disk error; cleared by the next commit that lands
        self.storage_problem: StorageError | None = None

    @property
    def mailbox(self) -> trio.MemorySendChannel[WriteRequest]:
        return self._send

    def depth(self) -> int:
        return self._recv.statistics().current_buffer_used

    def _offer(self, req: WriteRequest) -> bool:
        """Queue ``req`` at once, without yielding; False when the mailbox is full."""
        try:
            self._send.send_nowait(req)
        except trio.WouldBlock:
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise WriterStopped("the store writer is not running") from None
        self._unfinished += 1
        return True

    async def _send_waiting(self, req: WriteRequest) -> None:
        """Queue ``req`` once the full mailbox has room (back-pressure)."""
        self._unfinished += 1
        try:
            await self._send.send(req)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._unfinished -= 1
            raise WriterStopped("the store writer is not running") from None
        except BaseException:
            self._unfinished -= 1
            raise

    async def write(self, fn: Callable[[lmdb.Transaction], R], *, label: str = "write") -> R:
        """Run ``fn`` in a write transaction; return its result once the commit is durable.

        Cancelled while it waits, the write still commits (it is in the batch); only its answer is lost."""
        req = WriteRequest(fn, label)
        if not self._offer(req):
            await self._send_waiting(req)
        if self._lingering:  # an awaited write ends the wait for more write-behind requests at once
            self._wake.unpark_all()
        if req.result is not None:
            return req.result.unwrap()
        req.waiter = trio.lowlevel.current_task()

        def abort(_raise_cancel: Any) -> trio.lowlevel.Abort:
            req.waiter = None  # the batch commits it all the same; nobody is told
            return trio.lowlevel.Abort.SUCCEEDED

        # rescheduled with the request's outcome once its batch committed (or failed)
        return await trio.lowlevel.wait_task_rescheduled(abort)

    async def write_behind(
        self,
        fn: Callable[[lmdb.Transaction], Any],
        *,
        label: str = "write",
        on_done: Callable[[outcome.Outcome[Any]], None] | None = None,
        put: tuple[Any, bytes, bytes] | None = None,
        state_key: Hashable | None = None,
    ) -> None:
        """Queue ``fn`` for the next group commit without waiting for it (``on_done`` hears the outcome).

        Only for state whose loss in a crash is harmless to the ledger (a cart being built): the writer
        keeps the order of everything queued, so a later awaited write (the sale) commits after it. A
        batch of write-behind requests alone lingers up to ``linger`` seconds for more (coalesced into one
        commit); an awaited write arriving meanwhile commits with them at once. ``put`` (table handle, key,
        value) is written after ``fn`` (a stored reply); ``state_key``: ``fn`` writes the whole state under
        it, so a later request with the same key in the same batch makes this ``fn`` unneeded (skipped,
        ``put`` still written; see :func:`superseded`).

        It does not yield when the mailbox has room (the common case): a cart edit costs no trip through
        the scheduler; only a full mailbox makes it wait.
        """
        req = WriteRequest(fn, label, on_done, behind=True, put=put, state_key=state_key)
        if not self._offer(req):
            await self._send_waiting(req)
        if self._lingering and self._unfinished >= self.max_batch:  # a full batch need not wait
            self._wake.unpark_all()

    async def run(self, *, task_status: trio.TaskStatus[StoreWriter] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        async for first in self._recv:
            batch = [first]
            self._drain(batch)
            if self.linger > 0 and len(batch) < self.max_batch and all(r.behind for r in batch):
                await self._linger()
                self._drain(batch)
            await self._commit_batch(batch)

    def _drain(self, batch: list[WriteRequest]) -> None:
        while len(batch) < self.max_batch:
            try:
                batch.append(self._recv.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return

    async def _linger(self) -> None:
        """Wait up to ``linger`` seconds for more write-behind requests, which queue meanwhile without
        waking this task; an awaited write or a full batch's worth ends the wait at once."""
        self._lingering = True
        try:
            with trio.move_on_after(self.linger):
                await self._wake.park()
        finally:
            self._lingering = False

    async def sweep(
        self,
        table: str,
        expired: Callable[[bytes | memoryview], bool],
        *,
        step: int = 2000,
        label: str = "sweep",
    ) -> int:
        """Delete every entry of ``table`` whose value ``expired`` says; returns how many went.

        In the background of selling: the table is read ``step`` entries at a time inline (a few
        milliseconds), each step's expired keys are deleted in a small commit of their own (checked again
        there), and the next step starts after the last key read. Neither the loop nor the writer is held
        for a whole table, however large it grew."""
        db = self.store.db(table)
        env = self.store.env
        start: bytes | None = None
        gone = 0
        while True:
            found: list[bytes] = []
            with env.begin(buffers=True) as txn, txn.cursor(db=db) as cur:
                more = cur.first() if start is None else cur.set_range(start)
                for _ in range(step):
                    if not more:
                        break
                    if expired(cur.value()):
                        found.append(bytes(cur.key()))
                    more = cur.next()
                start = bytes(cur.key()) if more else None
            if found:

                def delete(txn: lmdb.Transaction, keys: list[bytes] = found) -> int:
                    n = 0
                    for k in keys:
                        raw = txn.get(k, db=db)
                        if raw is not None and expired(raw) and txn.delete(k, db=db):
                            n += 1
                    return n

                gone += await self.write(delete, label=label)
            else:
                await trio.lowlevel.checkpoint()
            if start is None:
                return gone

    async def probe(self) -> bool:
        """One small commit, to learn whether the store writes again (after a full disk was freed)."""
        key, db = b"storage_probe", self.store.db("meta")
        try:
            await self.write(lambda txn: txn.put(key, b"1", db=db), label="storage-probe")
        except StorageError:
            return False
        return True

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is committed (clean shutdown); False on time-out."""
        with trio.move_on_after(timeout):
            while self._unfinished or self._busy:
                if self._lingering:  # what is queued commits now, not after the linger
                    self._wake.unpark_all()
                await trio.sleep(0.002)
            return True
        return False

    async def _commit_batch(self, batch: list[WriteRequest]) -> None:
        self._busy = True
        try:
            await self._commit_batch_inner(batch)
        finally:
            self._busy = False

    async def _commit_batch_inner(self, batch: list[WriteRequest]) -> None:
        self._nest_all = False
        for _attempt in range(8):
            t0 = time.perf_counter()
            try:
                # cancellation is deferred until the commit returns: no half-done batch
                await trio.to_thread.run_sync(self._run_batch, batch, limiter=self._limiter)
            except _NestAll:
                self._nest_all = True
                continue
            except lmdb.MapFullError:
                # grow on the trio thread between batches: no txn of ours is open here
                new = self.store.grow()
                log.warning("store map full; grown to %d MiB", new >> 20)
                if self.metrics is not None:
                    self.metrics.store_map_grown.inc()
                continue
            except Exception as exc:  # disk full, disk error, corrupted env: every requester hears it
                err = as_storage_error(exc)
                if err.code != "storage_full":
                    log.exception("store commit failed for a batch of %d", len(batch))
                elif self.storage_problem is None or self.storage_problem.code != err.code:
                    # once per episode: while the disk stays full every batch would say it again
                    log.error("store commit failed for a batch of %d: disk or map full (%r)", len(batch), exc)
                self.storage_problem = err
                if self.metrics is not None:
                    self.metrics.store_write_failures.labels(err.code).inc()
                for req in batch:
                    req.result = outcome.Error(err)
            else:
                if self.storage_problem is not None:
                    log.warning("store writes again after %s", self.storage_problem.code)
                    self.storage_problem = None
                self.store.commits.fire(t for req in batch for t in req.marks)
            dt = time.perf_counter() - t0
            self.batches += 1
            self.requests += len(batch)
            self.last_batch_sizes.append(len(batch))
            if len(self.last_batch_sizes) > 1000:
                del self.last_batch_sizes[:500]
            if self.metrics is not None:
                self.metrics.writer_batch_size.observe(len(batch))
                self.metrics.writer_commit_seconds.observe(dt)
            break
        else:
            full = as_storage_error(lmdb.MapFullError("store map could not be grown enough"))
            log.error("store map full and could not be grown enough for a batch of %d", len(batch))
            self.storage_problem = full
            for req in batch:
                req.result = outcome.Error(full)
        for req in batch:
            self._unfinished -= 1
            if req.waiter is not None:
                assert req.result is not None
                trio.lowlevel.reschedule(req.waiter, req.result)
                req.waiter = None
            elif req.on_done is not None:
                assert req.result is not None
                try:
                    req.on_done(req.result)
                except Exception:
                    log.exception("write-behind callback of %s failed", req.label)

    def _run_batch(self, batch: list[WriteRequest]) -> None:
        env = self.store.env
        nest_all = self._nest_all
        commits = self.store.commits
        results: list[outcome.Outcome[Any]] = []
        for req in batch:
            req.marks = frozenset()
        # nested after a failure: every request runs, so one that fails takes no earlier save with it
        skip = set() if nest_all else superseded(batch)
        with env.begin(write=True) as txn:
            for i, req in enumerate(batch):
                put = req.put
                if i in skip:  # a later request of this batch writes its whole state: only its reply
                    if put is not None:
                        txn.put(put[1], put[2], db=put[0])
                    results.append(outcome.Value(None))
                    continue
                if req.behind and not nest_all:
                    # a nested transaction costs a begin and a merge per request: a cart save does without
                    commits.begin_request()
                    try:
                        value = req.fn(txn)
                        if put is not None:
                            txn.put(put[1], put[2], db=put[0])
                    except lmdb.MapFullError:
                        commits.drop_request()
                        raise
                    except Exception as exc:
                        commits.drop_request()
                        raise _NestAll from exc  # the `with` aborts the batch's transaction
                    req.marks = commits.end_request()
                    results.append(outcome.Value(value))
                    continue
                child = env.begin(write=True, parent=txn)
                commits.begin_request()
                try:
                    value = req.fn(child)
                    if put is not None:
                        child.put(put[1], put[2], db=put[0])
                except lmdb.MapFullError:
                    child.abort()
                    commits.drop_request()
                    raise  # the whole batch is retried after the map grows
                except Exception as exc:  # an invalid request fails alone
                    child.abort()
                    commits.drop_request()
                    results.append(outcome.Error(exc))
                else:
                    child.commit()
                    req.marks = commits.end_request()
                    results.append(outcome.Value(value))
        # the outer `with` committed (fsync) before anyone is answered
        for req, res in zip(batch, results, strict=True):
            req.result = res
