"""Metrc, exactly once, with the answer lost at every kind of write, against the sandbox answering Metrc's
documented PascalCase and, again, the camelCase some states answer (state-api-documented-shapes.md M0).

Each write below is applied by the sandbox and its answer dropped (the connection closes before a byte of
the response). The hub must look it up (``hub.state_channel.senders.LOOKUPS``) and end with the state
exactly as the store: one receipt per sale, a void archived once, two partial returns that add up (the
receipt ends at 1 of 3, not 2), a full return archived, an adjustment applied once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from hub.sale import inventory
from tests.state.conftest import PINS, World, connect, ready, sell, ws_url

MANAGER = {"manager": "maria", "pin": PINS["maria"]}


def _pre_rolls(w: World, n: int) -> list[str]:
    tags = [
        p.tag
        for p in w.unit_packages("PRE-", 50, min_qty=12)
        if (prod := inventory.product(w.hub.store, p.product_id)) and prod.limits.net_weight_mg <= 1000
    ][:n]
    assert len(tags) == n
    return tags


async def lose_answer(w: World, method: str, act: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``act`` while the sandbox drops the answer to the next ``method`` request; wait for the drop."""
    before = (await w.admin.faults())["counters"]["dropped"]
    await w.admin.set_faults(drop_every=1, drop_methods=[method])
    result = await act()
    with trio.fail_after(10):
        while (await w.admin.faults())["counters"]["dropped"] == before:
            await trio.sleep(0.05)
    await w.admin.clear_faults()
    await w.wait_drained(15)
    return result


def receipt(state: dict[str, Any], number: str) -> dict[str, Any]:
    [r] = [r for r in state["receipts"] if r["external_number"] == number]
    return r


@pytest.mark.parametrize("world", ["pascal", "camel"], indirect=True)
async def test_every_kind_with_its_answer_lost_ends_as_the_store(world: World) -> None:
    w = world
    lic = w.hub.config.store.licence
    a_tag, b_tag, c_tag = _pre_rolls(w, 3)
    adult = w.demo.customer("adult").id_scan
    with trio.fail_after(60):
        async with connect(ws_url(w.hub)) as c:
            await ready(c)
            # a sale whose answer is lost: found by the lookup, not POSTed again
            a = await lose_answer(w, "POST", lambda: sell(c, adult, a_tag, quantity=3))
            b = await sell(c, adult, b_tag)
            sale_c = await sell(c, adult, c_tag, quantity=2)
            await w.wait_drained()

            # a void whose DELETE answer is lost
            async def void_b() -> Any:
                return await c.request(
                    "void_sale",
                    receipt_number=b["receipt_number"],
                    approval=MANAGER | {"reason": "changed mind"},
                )

            await lose_answer(w, "DELETE", void_b)

            # two partial returns of sale A, each PUT answer lost: the receipt ends at 1 of 3
            def give_back(receipt_number: int, line: dict[str, int]) -> Callable[[], Awaitable[Any]]:
                async def act() -> Any:
                    return await c.request(
                        "return_items",
                        receipt_number=receipt_number,
                        lines={str(k): v for k, v in line.items()},
                        approval=MANAGER | {"reason": "sealed, unopened"},
                    )

                return act

            await lose_answer(w, "PUT", give_back(a["receipt_number"], {1: 1}))
            await lose_answer(w, "PUT", give_back(a["receipt_number"], {1: 1}))
            # a full return of sale C (a DELETE), its answer lost
            await lose_answer(w, "DELETE", give_back(sale_c["receipt_number"], {1: 2}))

        # an adjustment (from a reconciliation), its POST answer lost
        pkg = inventory.package(w.hub.store, b_tag)
        assert pkg is not None
        state = await w.admin.state()
        row = next(p for p in state["packages"] if p["label"] == b_tag)
        await w.admin.upsert_packages(
            [
                {
                    "label": b_tag,
                    "item_name": row["item_name"],
                    "category": row["category"],
                    "unit": "Each",
                    "quantity": pkg.quantity + 2,
                }
            ]
        )
        async with connect(ws_url(w.hub)) as o:
            token = await ready(o, "OFFICE", drawer=False)
            async with w.rest(token) as http:
                http.timeout = 20
                rec = (await http.post("/api/state/reconciliations")).json()

                async def adjust() -> Any:
                    answer = await http.post(
                        f"/api/state/reconciliations/{rec['id']}/adjust",
                        json={"label": b_tag, "reason": "Theft", "note": "two units unaccounted for"},
                    )
                    assert answer.status_code == 200, answer.text

                await lose_answer(w, "POST", adjust)

    state = await w.admin.state()
    faults = await w.admin.faults()
    counts = Counter(r["external_number"] for r in state["receipts"])
    numbers = {f"{lic}-{s['receipt_number']}" for s in (a, b, sale_c)}
    assert set(counts) == numbers and set(counts.values()) == {1}  # one receipt per sale, never two
    kept = receipt(state, f"{lic}-{a['receipt_number']}")
    assert kept["archived_date"] is None
    assert [(ln["package_label"], ln["quantity"]) for ln in kept["lines"]] == [(a_tag, 1.0)]
    assert receipt(state, f"{lic}-{b['receipt_number']}")["archived_date"] is not None
    assert receipt(state, f"{lic}-{sale_c['receipt_number']}")["archived_date"] is not None
    [made] = [x for x in state["adjustments"] if x["label"] == b_tag]
    assert (made["quantity"], made["reason"]) == (-2.0, "Theft")
    assert next(p for p in state["packages"] if p["label"] == b_tag)["quantity"] == pkg.quantity
    assert all(e.state == "sent" for e in w.outbox())
    assert Counter(e.kind for e in w.outbox()) == {"sale": 3, "void": 1, "return": 3, "adjustment": 1}
    lost = w.hub.metrics.state_errors.labels(lic, "outcome_unknown")._value.get()
    assert lost >= 6 and faults["counters"]["dropped"] == 0  # counters were cleared after each drop


async def test_a_dead_letter_retried_by_a_person_is_looked_up_before_it_is_resent(world: World) -> None:
    """A dead letter may have reached Metrc after all (here: a sale Metrc stored, dead-lettered by the hub);
    a manager's retry asks Metrc first and finds it, so the state never gets a second receipt."""
    import msgspec

    from hub.state_channel import outbox_store as box

    w = world
    lic = w.hub.config.store.licence
    [tag] = _pre_rolls(w, 1)
    adult = w.demo.customer("adult").id_scan
    with trio.fail_after(30):
        async with connect(ws_url(w.hub)) as c:
            token = await ready(c)
            paid = await sell(c, adult, tag)
            await w.wait_drained()
            [sent] = [e for e in w.outbox() if e.kind == "sale"]
            dead = msgspec.structs.replace(sent, state="dead", last_error="row 0: as a person saw it")
            assert await w.hub.writer.write(box.save(w.hub.store, "sent", dead), label="test")
            async with w.rest(token) as http:
                assert [d["seq"] for d in (await http.get("/api/state/dead-letter")).json()] == [sent.seq]
                answer = await http.post(f"/api/state/dead-letter/{sent.seq}/retry")
                assert answer.status_code == 200, answer.text
            await w.wait_drained()
    counts = Counter(r["external_number"] for r in (await w.admin.state())["receipts"])
    assert counts == {f"{lic}-{paid['receipt_number']}": 1}
    [again] = [e for e in w.outbox() if e.kind == "sale"]
    assert again.state == "sent" and again.state_ref
