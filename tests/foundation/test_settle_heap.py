"""The hub process moves what start-up built out of the collector's sight (hub.cli.settle_heap)."""

from __future__ import annotations

import gc

from hub import cli


def test_start_up_objects_are_frozen_and_young_collections_run_less_often() -> None:
    before = gc.get_threshold()
    kept = [[i] for i in range(1000)]  # containers the collector tracks, living as long as the "process"
    assert any(o is kept[0] for o in gc.get_objects())
    try:
        cli.settle_heap()
        # frozen objects are out of the collector's sight: no generation lists them any more
        assert not any(o is kept[0] or o is kept for o in gc.get_objects())
        assert gc.get_threshold() == (cli.YOUNG_COLLECTION_EVERY, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
