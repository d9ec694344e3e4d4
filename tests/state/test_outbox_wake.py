"""Every entry added to the state outbox wakes its sender when the transaction commits (issue 13): a sale,
a void, a return, a count's adjustment and a reconciliation's adjustment reach the state at once, not at
the next poll.

The channel's poll is set to ten minutes here, so an entry that did not wake the sender would wait for it
and every bound below would fail.
"""

from __future__ import annotations

import trio

from hub.domain.outbox import OutboxEntry
from tests.state.conftest import World, connect, ready, sell, ws_url

PROMPT_S = 1.5  # well under the 2 s poll the channel would otherwise wait for
STATE_POLL_SECONDS = 600.0  # read by the ``world`` fixture (tests/state/conftest.py)


def approval(reason: str) -> dict[str, str]:
    return {"manager": "maria", "pin": "3333", "reason": reason}


async def sent_soon(w: World, kind: str) -> OutboxEntry:
    """The entry of ``kind`` added last, once the state has it; fails after PROMPT_S."""
    with trio.fail_after(PROMPT_S):
        while True:
            entries = [e for e in w.outbox() if e.kind == kind]
            if entries and entries[-1].state == "sent":
                return entries[-1]
            await trio.sleep(0.02)


async def test_a_return_a_count_and_a_pull_adjustment_wake_the_sender(world: World) -> None:
    w = world
    tag, short, planted = (p.tag for p in w.unit_packages("FLW-0", 3, min_qty=10))
    with trio.fail_after(60):
        async with connect(ws_url(w.hub)) as reg, connect(ws_url(w.hub)) as office:
            await ready(reg, "R1", "maria")
            token = await ready(office, "OFFICE", "maria", drawer=False)
            sale = await sell(reg, w.demo.customer("adult").id_scan, tag)
            await w.wait_drained()
            # a return: written by the back office, no wake of its own
            await reg.request(
                "return_items",
                receipt_number=sale["receipt_number"],
                lines={"1": 1},
                approval=approval("sealed unit"),
            )
            ret = await sent_soon(w, "return")
            assert ret.idempotency_key.endswith(f"-{sale['receipt_number']}-1")

            # a count: one unit short, approved as an adjustment
            started = await office.request("start_count", kind="spot", tags=[short], witness="ana")
            pkg = next(p for p in w.unit_packages("FLW-0", 3, min_qty=10) if p.tag == short)
            await office.request(
                "count_package", count_id=started["count_id"], tag=short, counted=pkg.quantity - 1
            )
            await office.request("finish_count", count_id=started["count_id"])
            await office.request(
                "approve_adjustments", count_id=started["count_id"], reasons={short: "Theft"}
            )
            counted = await sent_soon(w, "adjustment")
            assert short in counted.package_labels

            # a pull: the reconciliation finds what the state thinks, a manager adjusts it
            state = await w.admin.state()
            row = next(p for p in state["packages"] if p["label"] == planted)
            held = next(p for p in w.unit_packages("FLW-0", 3, min_qty=10) if p.tag == planted).quantity
            await w.admin.upsert_packages(
                [
                    {
                        "label": planted,
                        "item_name": row["item_name"],
                        "category": row["category"],
                        "unit": "Each",
                        "quantity": held + 2,
                    }
                ]
            )
            async with w.rest(token) as http:
                http.timeout = 30
                rec = (await http.post("/api/state/reconciliations")).json()
                adj = await http.post(
                    f"/api/state/reconciliations/{rec['id']}/adjust",
                    json={"label": planted, "reason": "Theft", "note": "two units unaccounted for"},
                )
                assert adj.status_code == 200, adj.text
            pulled = await sent_soon(w, "adjustment")
            assert pulled.package_labels == (planted,)
    assert [e.kind for e in w.outbox()] == ["sale", "return", "adjustment", "adjustment"]
    assert all(e.state == "sent" and e.attempts == 0 for e in w.outbox())  # sent at the first try


async def test_a_sale_and_a_void_wake_the_sender_when_they_commit(world: World) -> None:
    """The sale commit and the void add their entries through ``outbox_store.add``: the commit wakes the
    sender (no after-sale hook, no waker of the void's own)."""
    w = world
    tag = w.unit_packages("FLW-0", 1, min_qty=10)[0].tag
    with trio.fail_after(60):
        async with connect(ws_url(w.hub)) as reg:
            await ready(reg, "R1", "maria")
            sale = await sell(reg, w.demo.customer("adult").id_scan, tag)
            sold = await sent_soon(w, "sale")
            assert sold.idempotency_key.endswith(f"-{sale['receipt_number']}")
            await reg.request(
                "void_sale", receipt_number=sale["receipt_number"], approval=approval("wrong customer")
            )
            voided = await sent_soon(w, "void")
            assert voided.idempotency_key.endswith(f"-{sale['receipt_number']}")
    assert [e.kind for e in w.outbox()] == ["sale", "void"]
    assert all(e.state == "sent" and e.attempts == 0 for e in w.outbox())


async def test_a_dead_letter_a_manager_retries_wakes_the_sender(world: World) -> None:
    """The retry puts the entry back through the outbox's own path (``outbox_store.retry`` marks the commit
    topic): the sender looks at once, not at the next poll, and the REST route wakes nobody by hand."""
    w = world
    tag = w.unit_packages("PRE-", 1, min_qty=10)[0].tag
    state = await w.admin.state()
    row = next(p for p in state["packages"] if p["label"] == tag)

    async def finished(value: bool) -> None:
        await w.admin.upsert_packages(
            [
                {
                    "label": tag,
                    "item_name": row["item_name"],
                    "category": row["category"],
                    "unit": "Each",
                    "quantity": row["quantity"],
                    "finished": value,
                }
            ]
        )

    await finished(True)  # the state refuses the sale of a finished package: a row error, a dead letter
    with trio.fail_after(60):
        async with connect(ws_url(w.hub)) as reg:
            token = await ready(reg, "R1", "maria")
            sale = await sell(reg, w.demo.customer("adult").id_scan, tag)
        with trio.fail_after(PROMPT_S):
            while not any(e.state == "dead" for e in w.outbox()):
                await trio.sleep(0.02)
        await finished(False)
        async with w.rest(token) as http:
            seq = (await http.get("/api/state/dead-letter")).json()[0]["seq"]
            answer = await http.post(f"/api/state/dead-letter/{seq}/retry")
            assert answer.status_code == 200, answer.text
        sent = await sent_soon(w, "sale")
    assert sent.seq == seq and sent.idempotency_key.endswith(f"-{sale['receipt_number']}")
