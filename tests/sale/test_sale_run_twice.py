"""A sale and its void, with every batch of the writer run twice (tests/support/rerun.py): the writer runs a
batch again when the map fills or a cart save fails unnested, and what the first run changed outside its
aborted transaction must not be kept or doubled. The flows are test_sale_live's, with its assertions (the
package down by the units sold, points earned once, one outbox entry per sale and void); here also one
audit entry per event, one ledger entry, one receipt number taken, one cash sale on the drawer."""

from __future__ import annotations

from collections import Counter

import pytest

from hub import audit
from hub.app import Hub
from hub.domain.drawer import DrawerSession
from hub.sale.commit import RECEIPT_SEQ
from hub.store.env import decode
from hub.store.keys import text
from hub.store.layout import LEDGER, OPEN_DRAWERS
from tests.sale import test_sale_live as live
from tests.support.rerun import every_batch_runs_twice


def audited(hub: Hub) -> Counter[str]:
    assert audit.verify(hub.store)[1] is None
    return Counter(decode(raw, audit.AuditEntry).action for _, raw in audit.iter_entries(hub.store))


async def test_a_cash_sale_run_twice_by_the_writer_is_kept_once(
    store_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = store_hub
    aborted = every_batch_runs_twice(hub.writer, monkeypatch)
    await live.test_complete_cash_sale(hub)
    assert {"sale", "check_in", "OpenDrawer"} <= set(aborted)
    actions = audited(hub)
    assert (actions["sale"], actions["drawer_opened"], actions["check_in"]) == (1, 1, 1)
    with hub.store.read() as txn:
        assert int.from_bytes(txn.get(RECEIPT_SEQ, db=hub.store.db("meta")), "big") == 1
        assert len(list(LEDGER.scan(txn, hub.store))) == 1
        session_id = OPEN_DRAWERS.get(txn, hub.store, "R1")
        assert session_id is not None
        raw = txn.get(text(session_id), db=hub.store.db("drawers"))
    assert decode(raw, DrawerSession).cash_sales == 1


async def test_a_void_run_twice_by_the_writer_gives_back_once(
    store_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = store_hub
    aborted = every_batch_runs_twice(hub.writer, monkeypatch)
    await live.test_void_restores_inventory_and_allotment(hub)
    assert {"sale", "void"} <= set(aborted)
    actions = audited(hub)
    assert (actions["sale"], actions["void"], actions["override"]) == (1, 1, 1)
    with hub.store.read() as txn:
        [(_, entry)] = list(LEDGER.scan(txn, hub.store))
    assert entry.voided
