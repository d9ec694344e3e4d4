"""Every batch a hub's writer commits runs twice, as when the LMDB map fills (hub/store/writer.py).

The writer runs a whole batch again when the map is full (grown, then retried) or when a write-behind
request failed unnested: the first run's transaction is aborted, so the store is safe, but a write
function that changed something outside the transaction (a struct computed before the write, a list, a
counter, a queued notice) does it twice. A flow run under :func:`every_batch_runs_twice` must leave
exactly what it leaves when each batch runs once.
"""

from __future__ import annotations

from typing import Any

import lmdb
import pytest

from hub.store.writer import StoreWriter, WriteRequest


def every_batch_runs_twice(writer: StoreWriter, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on the first run of each batch of ``writer`` ends with a MapFullError raised after its last
    request ran, so the writer aborts the batch's transaction and runs the whole batch again. The map is
    not really full, so it is not grown (doubling it once per batch would soon ask for more address space
    than there is). Returns the labels of the requests run twice, for the test to check that they were."""
    twice: list[str] = []
    first: list[list[WriteRequest]] = []  # the batch whose first run this is
    run_batch = writer._run_batch  # noqa: SLF001 - the writer's own step, wrapped

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

    monkeypatch.setattr(writer, "_run_batch", run_batch_twice)
    monkeypatch.setattr(writer.store, "grow", lambda: writer.store.map_size)
    return twice
