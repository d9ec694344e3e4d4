"""Inventory counts: a spot check with one missing unit produces the right proposed adjustment; approved by a
manager, it reaches the state outbox and the local record; a full count lists what was not scanned."""

from __future__ import annotations

import pytest
import trio

from hub.app import Hub
from hub.backoffice import counting
from hub.client import ClientError, connect
from hub.domain.outbox import OutboxEntry
from hub.domain.state_payloads import StateAdjustment, metrc_adjustment
from hub.sale import inventory
from hub.store.env import decode
from hub.store.keys import text
from tests.backoffice.office_helpers import ready
from tests.conftest import ws_url


def adjustments(hub: Hub) -> list[OutboxEntry]:
    with hub.store.read() as txn:
        entries = [decode(v, OutboxEntry) for _, v in txn.cursor(db=hub.store.db("outbox"))]
    return [e for e in entries if e.kind == "adjustment"]


async def test_spot_check_missing_unit_becomes_an_approved_adjustment(office_hub: Hub) -> None:
    hub = office_hub
    pkgs = [p for p in inventory.packages_of(hub.store, "FLW-001") if p.status == "active" and p.quantity > 3]
    short, fine = pkgs[0], pkgs[1] if len(pkgs) > 1 else None
    tags = [short.tag] + ([fine.tag] if fine else [])
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as tech, connect(ws_url(hub)) as office:
            await ready(tech, "R1", "tom")
            await ready(office, "OFFICE", "maria")
            started = await tech.request("start_count", kind="spot", tags=tags, witness="ana")
            assert [p["tag"] for p in started["packages"]] == sorted(tags)
            assert "expected" not in str(started)  # the counter counts without the record's figure
            count_id = started["count_id"]
            with pytest.raises(ClientError) as e:
                await tech.request("finish_count", count_id=count_id)
            assert e.value.code == "count_incomplete"
            await tech.request("count_package", count_id=count_id, tag=short.tag, counted=short.quantity - 1)
            if fine:
                await tech.request("count_package", count_id=count_id, tag=fine.tag, counted=fine.quantity)
            finished = await tech.request("finish_count", count_id=count_id)
            [proposal] = finished["proposals"]
            assert proposal["tag"] == short.tag and proposal["delta"] == -1
            assert proposal["local"] == short.quantity and proposal["counted"] == short.quantity - 1
            assert proposal["reason"] == "Incorrect Quantity" and proposal["unit"] == "each"
            assert adjustments(hub) == []  # nothing reaches the state before a manager approves
            # a technician may count but not approve
            with pytest.raises(ClientError) as e:
                await tech.request("approve_adjustments", count_id=count_id)
            assert e.value.code == "forbidden"
            with pytest.raises(ClientError) as e:
                await office.request("approve_adjustments", count_id=count_id, reasons={short.tag: "Lost it"})
            assert e.value.code == "bad_reason"
            approved = await office.request(
                "approve_adjustments", count_id=count_id, reasons={short.tag: "Theft"}, note="shelf 3 short"
            )
            assert [a["tag"] for a in approved["approved"]] == [short.tag]

    [entry] = adjustments(hub)
    assert entry.package_labels == (short.tag,)
    adj = decode(entry.payload, StateAdjustment)
    assert (adj.delta_units, adj.resulting_units, adj.unit_of_measure) == (-1, short.quantity - 1, "Each")
    assert adj.reason == "Theft" and adj.note == "shelf 3 short"
    body = metrc_adjustment(adj)
    assert body["Quantity"] == -1.0 and body["AdjustmentReason"] == "Theft"
    after = inventory.package(hub.store, short.tag)
    assert after is not None and after.quantity == short.quantity - 1
    kept = hub.store.get("counts", text(count_id), counting.CountSession)
    assert kept is not None and kept.status == "approved" and kept.witness == "ana"
    assert kept.proposals[0].approved_by == "maria" and kept.proposals[0].outbox_seq == entry.seq


async def test_full_count_lists_unscanned_and_unknown(office_hub: Hub) -> None:
    hub = office_hub
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as office:
            await ready(office, "OFFICE", "maria")
            started = await office.request("start_count", kind="full")
            lines = started["packages"]
            assert len(lines) > 3
            first = inventory.package(hub.store, lines[0]["tag"])
            assert first is not None
            await office.request(
                "count_package", count_id=started["count_id"], tag=first.tag, counted=first.quantity
            )
            unknown = "1A4FF0000000000000009999"
            await office.request("count_package", count_id=started["count_id"], tag=unknown, counted=1)
            done = await office.request("finish_count", count_id=started["count_id"])
            assert done["proposals"] == []
            assert first.tag not in done["unscanned"] and len(done["unscanned"]) == len(lines) - 1
            assert done["unknown_scans"] == [unknown]
