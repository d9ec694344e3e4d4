"""Every batch a hub's writer commits runs twice, as when the LMDB map fills (hub/store/writer.py).

The writer runs a whole batch again when the map is full (grown, then retried) or when a write-behind
request failed unnested: the first run's transaction is aborted, so the store is safe, but a write
function that changed something outside the transaction (a struct computed before the write, a list, a
counter, a queued notice) does it twice. A flow run under :func:`every_batch_runs_twice` must leave
exactly what it leaves when each batch runs once.

As a plugin, ``PYTHONPATH=$PWD python -m pytest -p tests.support.rerun tests/sale`` runs every batch of
every writer the tests start in their own process twice (a hub started as a subprocess is not affected).
The tests whose write functions record their own runs on purpose (tests/foundation/test_writer.py,
tests/store/test_tables.py) see the second runs and fail under it; any other failure is a finding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lmdb
import pytest

from hub.store.writer import StoreWriter, WriteRequest


def _twice(
    run_batch: Callable[[list[WriteRequest]], None], twice: list[str]
) -> Callable[[list[WriteRequest]], None]:
    """``run_batch`` whose first run of each batch ends with a MapFullError raised after its last request
    ran, so the writer aborts the batch's transaction and runs the whole batch again."""
    first: list[list[WriteRequest]] = []  # the batch whose first run this is

    def run_batch_twice(batch: list[WriteRequest]) -> None:
        if first and first[0] is batch:
            return run_batch(batch)  # the run that counts
        first[:] = [batch]
        last = batch[-1]  # the last request is never folded into a later one: it runs
        fn = last.fn

        def then_the_map_is_full(txn: lmdb.Transaction) -> Any:
            try:
                return fn(txn)
            finally:
                raise lmdb.MapFullError("the map filled at the end of this batch")  # noqa: B012

        last.fn = then_the_map_is_full
        try:
            run_batch(batch)
        finally:
            last.fn = fn
            twice.extend(req.label for req in batch)

    return run_batch_twice


def every_batch_runs_twice(writer: StoreWriter, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on every batch of ``writer`` runs twice, its first run aborted. The map is not really
    full, so it is not grown (doubling it once per batch would soon ask for more address space than there
    is). Returns the labels of the requests run twice, for the test to check that they were."""
    twice: list[str] = []
    monkeypatch.setattr(writer, "_run_batch", _twice(writer._run_batch, twice))  # noqa: SLF001
    monkeypatch.setattr(writer.store, "grow", lambda: writer.store.map_size)
    return twice


def pytest_configure(config: pytest.Config) -> None:
    """As a plugin (``-p tests.support.rerun``): every writer started in this process runs its batches twice."""
    twice: list[str] = []
    start = StoreWriter.__init__

    def writer_running_twice(self: StoreWriter, *args: Any, **kwargs: Any) -> None:
        start(self, *args, **kwargs)
        self._run_batch = _twice(self._run_batch, twice)  # type: ignore[method-assign]  # noqa: SLF001
        self.store.grow = lambda: self.store.map_size  # type: ignore[method-assign]

    StoreWriter.__init__ = writer_running_twice  # type: ignore[method-assign]
    config.stash[_RUN_TWICE] = twice


_RUN_TWICE = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    terminalreporter.write_line(f"tests.support.rerun: {len(config.stash[_RUN_TWICE])} requests ran twice")
