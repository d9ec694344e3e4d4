"""The back office's day (tests/backoffice/test_day_in_the_life.py: drawers opened, sales, a void, a drop, a
paid-out, a return, blind counts, a sign-off) with every batch of the writer run twice (tests/support/
rerun.py), as when the map fills: the Z report still ties out (the day's own assertions), every event is
audited once and the state's outbox holds one entry per sale, void and return."""

from __future__ import annotations

from collections import Counter

import pytest

from hub import audit
from hub.app import Hub
from hub.domain.outbox import OutboxEntry
from hub.store.env import decode
from hub.store.layout import RETURN_SEQ
from tests.backoffice import test_day_in_the_life as day
from tests.support.rerun import every_batch_runs_twice

# what the day audits when each batch runs once
DAY = {
    "login": 3,
    "pin_confirmed": 6,
    "drawer_opened": 2,
    "check_in": 5,
    "sale": 5,
    "override": 4,
    "void": 1,
    "drawer_drop": 1,
    "drawer_paid_out": 1,
    "return": 1,
    "drawer_counted": 2,
    "drawer_signed_off": 1,
}


async def test_the_day_run_twice_by_the_writer_is_kept_once(
    office_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = office_hub
    aborted = every_batch_runs_twice(hub.writer, monkeypatch)
    await day.test_day_in_the_life(hub)
    assert {"sale", "void", "return", "DrawerMovement", "BlindCount", "SignOffDrawer"} <= set(aborted)
    assert audit.verify(hub.store)[1] is None
    actions = Counter(decode(raw, audit.AuditEntry).action for _, raw in audit.iter_entries(hub.store))
    assert {a: actions[a] for a in DAY} == DAY
    with hub.store.read() as txn:
        kinds = Counter(decode(v, OutboxEntry).kind for _, v in txn.cursor(db=hub.store.db("outbox")))
        assert RETURN_SEQ.get(txn, hub.store) == 1
    assert kinds == {"sale": 5, "void": 1, "return": 1}
