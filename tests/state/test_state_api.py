"""Small REST answers of the state channel: the state's adjustment reasons, and who may receive."""

from __future__ import annotations

import trio

from hub.client import connect
from tests.conftest import ws_url
from tests.state.conftest import World, ready


async def test_adjust_reasons_come_from_the_state(world: World) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(world.hub)) as c:
            token = await ready(c, drawer=False)
            async with world.rest(token) as http:
                reasons = (await http.get("/api/state/adjust-reasons")).json()
    names = {r["name"] for r in reasons}
    assert "Theft" in names and all(isinstance(r["requires_note"], bool) for r in reasons)


async def test_a_technician_may_list_manifests_but_not_reconcile(world: World) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(world.hub)) as c:
            token = await ready(c, staff="tom", drawer=False)
            async with world.rest(token) as http:
                assert (await http.get("/api/state/manifests")).status_code == 200
                assert (await http.post("/api/state/reconciliations")).status_code == 403


async def test_register_is_told_when_the_state_is_down(world: World) -> None:
    with trio.fail_after(30):
        async with connect(ws_url(world.hub)) as c:
            await ready(c)
            snap = await c.wait_snapshot(lambda s: "state_system" in s)
            assert snap["state"]["state_system"]["ok"] is True
            await world.admin.set_faults(outage=True)
            pkg = world.unit_packages("FLW-001", 1)[0]
            await c.request("scan", data=world.demo.customer("adult").id_scan)
            await c.request("add_package", tag=pkg.tag)
            cart = (await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"]))["state"]["cart"]
            # the sale is not held up by the outage, and afterwards the register says what is going on
            await c.request("pay", tenders=[{"kind": "cash", "amount_cents": cart["total_cents"]}])
            with trio.fail_after(15):
                while True:
                    world.hub.registers["R1"].publish()
                    snap = await c.wait_snapshot(lambda s: True)
                    if not snap["state"]["state_system"]["ok"]:
                        break
                    await trio.sleep(0.2)
            message = snap["state"]["state_system"]["message"]
            assert "not answering" in message and "sent when it is back" in message
            await world.admin.clear_faults()


def test_state_messages_in_logs_never_carry_the_patient_number() -> None:
    from datetime import UTC, datetime

    import msgspec

    from actors.state_sync import for_log
    from hub.domain.outbox import OutboxEntry
    from hub.domain.state_payloads import StateSale, StateSaleLine

    now = datetime.now(UTC)
    sale = StateSale(
        external_receipt_number="L-1",
        sold_at=now,
        store_time_zone="America/Detroit",
        lines=(StateSaleLine(package_label="1A4", unit_of_measure="Each", units=1, total_price_cents=1),),
        customer_type="Patient",
        patient_license="PAT-7734",
    )
    entry = OutboxEntry(
        seq=1,
        kind="sale",
        licence="L",
        idempotency_key="L-1",
        payload=msgspec.msgpack.encode(sale),
        package_labels=("1A4",),
        created_at=now,
        next_attempt_at=now,
    )
    assert for_log(entry, "Patient PAT-7734 has no allotment") == "Patient [licence number] has no allotment"
