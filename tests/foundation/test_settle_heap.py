"""The hub process moves what start-up built out of the collector's sight (hub.cli.settle_heap)."""

from __future__ import annotations

import gc

from hub import cli


def test_start_up_objects_are_frozen_and_young_collections_run_less_often() -> None:
    before = gc.get_threshold()
    kept = [{"package": i} for i in range(1000)]  # lives as long as the "process"
    try:
        cli.settle_heap()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (cli.YOUNG_COLLECTION_EVERY, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
