"""The limits decision is cached per customer: a sale for the same customer at another register makes it
stale at once, a sale for another customer leaves it alone (its history is not read again). Counted, not
timed: ``hub.sale.view.history_reads`` counts the ledger reads the cache makes, per customer."""

from __future__ import annotations

import pytest
import trio

from hub.app import Hub
from hub.client import connect
from hub.sale import view
from hub.sale.context import ctx_of, sale_of
from tests.conftest import ws_url
from tests.sale.test_sale_live import demo, open_drawer, ready_register, sellable_unit_package


def _used(snap: dict, bucket: str = "non-concentrated") -> int:  # type: ignore[type-arg]
    return int(next(g for g in snap["state"]["allotment"] if g["bucket"] == bucket)["used"])


@pytest.fixture(autouse=True)
def one_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caches also turn with the minute; the tests are about the ledger, so the minute stands still."""
    monkeypatch.setattr(view, "_minute", lambda now: 0)


async def test_a_sale_at_another_register_for_the_same_customer_reaches_the_first_register(
    store_hub: Hub,
) -> None:
    hub = store_hub
    d = demo(hub)
    adult = d.customer("adult").id_scan
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as r1, connect(ws_url(hub)) as r2:
            await ready_register(r1, "R1")
            await ready_register(r2, "R2")
            await open_drawer(r2)
            # the same customer stands at R1 (checked in, nothing in the cart yet) ...
            await r1.request("scan", data=adult)
            quiet = await r1.wait_snapshot(lambda s: s["customer"] and s["allotment"])
            used_before = _used(quiet)
            customer = sale_of(hub.registers["R1"]).customer
            assert customer is not None
            decided = view.current_limits(ctx_of(hub.services), customer, None)
            assert view.current_limits(ctx_of(hub.services), customer, None) is decided  # a hit

            # ... and buys a gram at R2
            await r2.request("scan", data=adult)
            await r2.request("add_package", tag=sellable_unit_package(hub, "FLW-001").tag)
            snap = await r2.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            await r2.request(
                "pay", tenders=[{"kind": "cash", "amount_cents": snap["state"]["cart"]["total_cents"]}]
            )

            # R1's next decision for that customer counts the sale made at R2
            after = view.current_limits(ctx_of(hub.services), customer, None)
            bucket = "non-concentrated"
            bought_at_r2 = decided.remaining[bucket] - after.remaining[bucket]
            assert bought_at_r2 > 0
            # and so does its screen, at the next change there
            await r1.request("add_package", tag=sellable_unit_package(hub, "FLW-001").tag)
            snap = await r1.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            assert _used(snap) >= used_before + bought_at_r2 + 1  # R2's sale and R1's own line


async def test_a_sale_for_another_customer_does_not_reread_this_customers_history(store_hub: Hub) -> None:
    hub = store_hub
    d = demo(hub)
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as r1, connect(ws_url(hub)) as r2:
            await ready_register(r1, "R1")
            await ready_register(r2, "R2")
            await open_drawer(r1)
            await open_drawer(r2)
            await r1.request("scan", data=d.customer("adult").id_scan)
            await r1.request("add_package", tag=sellable_unit_package(hub, "FLW-001").tag)
            await r1.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            adult = sale_of(hub.registers["R1"]).customer
            assert adult is not None
            reads_before = view.history_reads[adult.customer_id]
            assert reads_before >= 1

            # another customer buys at R2: the ledger is written, for them only
            await r2.request("scan", data=d.customer("non_resident").id_scan)
            await r2.request("add_package", tag=sellable_unit_package(hub, "FLW-001").tag)
            snap = await r2.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            await r2.request(
                "pay", tenders=[{"kind": "cash", "amount_cents": snap["state"]["cart"]["total_cents"]}]
            )

            # R1 keeps scanning for its customer: new decisions, the history as read before
            pkg = sellable_unit_package(hub, "FLW-001")
            await r1.request("add_package", tag=pkg.tag)
            await r1.wait_snapshot(
                lambda s: s["cart"] and sum(ln["quantity"] for ln in s["cart"]["lines"]) == 2
            )
            assert view.history_reads[adult.customer_id] == reads_before

            # and a sale for this customer makes the next decision read it again
            snap = await r1.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
            await r1.request(
                "pay", tenders=[{"kind": "cash", "amount_cents": snap["state"]["cart"]["total_cents"]}]
            )
            await r1.request("scan", data=d.customer("adult").id_scan)
            await r1.wait_snapshot(lambda s: s["customer"] and s["allotment"] and not s["cart"])
            assert view.history_reads[adult.customer_id] == reads_before + 1
