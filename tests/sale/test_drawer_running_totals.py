"""A cash sale adds one row for the drawer and keeps the session's record the same size: the commit never
re-reads or re-writes the drawer's day (its cash sales are running totals, each kept as a row of its own).
No timing is asserted: the record's size and the rows are counted."""

from __future__ import annotations

import trio

from hub.app import Hub
from hub.client import connect
from hub.domain.drawer import DrawerSession
from hub.store import layout
from hub.store.env import decode
from hub.store.keys import text
from tests.conftest import ws_url
from tests.sale.test_sale_live import FLOAT, demo, open_drawer, ready_register, sellable_unit_package


def stored_session(hub: Hub) -> tuple[DrawerSession, int, list[int]]:
    """The open drawer of R1 as stored, its record's size, and the receipts of its rows of cash sales."""
    store = hub.store
    with store.read() as txn:
        session_id = layout.OPEN_DRAWERS.get(txn, store, "R1")
        assert session_id is not None
        raw = bytes(txn.get(text(session_id), db=store.db("drawers")))
        rows = [e.receipt_number for _, e in layout.DRAWER_SALES.scan(txn, store, (session_id,))]
    return decode(raw, DrawerSession), len(raw), rows


async def test_cash_sales_are_rows_beside_a_session_record_that_does_not_grow(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    receipts: list[int] = []
    cash_in = 0
    sizes = []
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await ready_register(c)
            await open_drawer(c)
            for _ in range(3):
                await c.request("scan", data=d.customer("adult").id_scan)
                await c.request("scan", data=sellable_unit_package(hub, "FLW-001").tag)
                snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
                total = snap["state"]["cart"]["total_cents"]
                paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total + 100}])
                assert paid["change_cents"] == 100
                receipts.append(paid["receipt_number"])
                cash_in += total
                session, size, rows = stored_session(hub)
                sizes.append(size)
                assert [e.kind for e in session.events if e.kind == "cash_sale"] == []
                assert rows == receipts and session.folded_sales == session.cash_sales == len(receipts)
                assert session.cash_sales_cents == cash_in
                float_cents = sum({"B20": 2000, "B5": 500, "C25": 25}[k] * n for k, n in FLOAT.items())
                assert session.expected_cents == float_cents + cash_in
    # the running totals are integers of a fixed width in msgpack for these amounts: same size every sale
    assert sizes[1] == sizes[2], sizes
