"""An online order from intake to its pickup sale (tests/orders/test_order_flow.py) with every batch of the
writer run twice (tests/support/rerun.py), as when the map fills: the reservations are released, the
state gets the receipt once, the channel hears each change once and the customer each notice once (the
flow's own assertions), and every change of the order is audited once."""

from __future__ import annotations

from collections import Counter

import pytest

from hub import audit
from hub.store.env import decode
from tests.orders import test_order_flow as flow
from tests.orders.conftest import Shop
from tests.support.rerun import every_batch_runs_twice


async def test_an_order_run_twice_by_the_writer_is_kept_once(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = shop.hub
    aborted = every_batch_runs_twice(hub.writer, monkeypatch)
    await flow.test_intake_pick_ready_pickup_sale_at_the_sandbox(shop)
    assert {"order_intake", "AcceptOrder", "PickScan", "OrderReady", "sale"} <= set(aborted)
    assert {"order_callbacks", "notices", "outbox"} <= set(aborted)  # the deliveries' and state's writes
    assert audit.verify(hub.store)[1] is None
    actions = Counter(decode(raw, audit.AuditEntry).action for _, raw in audit.iter_entries(hub.store))
    once = ("order_received", "order_accepted", "order_picking", "order_ready", "order_completed", "sale")
    assert {a: actions[a] for a in once} == dict.fromkeys(once, 1)
    assert actions["order_pick"] == 3  # two units of the pre-roll, then the weighed flower
