"""The outbox to the sandbox over real HTTP: outages, lost answers, row errors and the dead letter."""

from __future__ import annotations

from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio

from actors.state_sync import StateSyncActor
from hub.domain.state_payloads import StateSale, metrc_local_time
from hub.store.env import decode
from sandbox import demo as sbx
from tests.state.conftest import World, connect, ready, sell, ws_url


def _pre_rolls(w: World, n: int) -> list[str]:
    from hub.sale import inventory

    tags = [
        p.tag
        for p in w.unit_packages("PRE-", 50, min_qty=12)
        if (prod := inventory.product(w.hub.store, p.product_id)) and prod.limits.net_weight_mg <= 1000
    ][:n]
    assert len(tags) >= 3, "the demo catalogue has sellable pre-rolls"
    return tags


async def test_fifty_sales_during_outage_reach_the_sandbox_exactly_once(world: World) -> None:
    w = world
    tags = _pre_rolls(w, 6)
    adults = [w.demo.customer("adult").id_scan, w.demo.customer("non_resident").id_scan]
    await w.admin.set_faults(outage=True)
    sold: dict[str, str] = {}  # external number -> tag
    # a guard against a hang, not a speed limit: on a busy 2-core machine this took 18 s of 20
    with trio.fail_after(60):
        async with connect(ws_url(w.hub)) as c:
            await ready(c)
            for i in range(50):
                t0 = trio.current_time()
                tag = tags[i % len(tags)]
                paid = await sell(c, adults[i // 25], tag)
                # the register never waits for the state system
                assert trio.current_time() - t0 < 2.0
                sold[f"{w.hub.config.store.licence}-{paid['receipt_number']}"] = tag
        await trio.sleep(0.5)
        assert await w.receipts() == []
        # every entry waits (an attempt caught in flight settles as pending or unknown)
        with trio.fail_after(5):
            while not all(e.state in ("pending", "unknown") for e in w.outbox()):
                assert not any(e.state in ("sent", "dead") for e in w.outbox())
                await trio.sleep(0.02)
        assert w.hub.metrics.state_backlog.labels(w.hub.config.store.licence)._value.get() == 50
        await w.admin.set_faults(outage=False)
        await w.wait_drained(15)
    receipts = await w.receipts()
    counts = Counter(r["external_number"] for r in receipts)
    assert set(counts) == set(sold) and set(counts.values()) == {1}
    zone = ZoneInfo(w.hub.config.store.time_zone)
    by_number = {r["external_number"]: r for r in receipts}
    for entry in w.outbox():
        sale = decode(entry.payload, StateSale)
        r = by_number[sale.external_receipt_number]
        assert [(ln["package_label"], ln["quantity"], ln["unit"]) for ln in r["lines"]] == [
            (sold[sale.external_receipt_number], 1.0, "Each")
        ]
        # SalesDateTime: the store's local time with no offset
        assert r["sales_date_time"] == metrc_local_time(sale.sold_at, zone.key)
        assert r["license"] == sbx.METRC_LICENSE
    # the gauge is set at the end of the actor's pass, just after the last entry is stored as sent
    with trio.fail_after(5):
        while w.hub.metrics.state_backlog.labels(w.hub.config.store.licence)._value.get() != 0:
            await trio.sleep(0.02)
    assert w.hub.metrics.state_backlog.labels(w.hub.config.store.licence)._value.get() == 0


async def test_lost_answers_every_third_request_no_duplicate_no_loss(world: World) -> None:
    w = world
    tags = _pre_rolls(w, 4)
    adult = w.demo.customer("adult").id_scan
    await w.admin.set_faults(drop_every=3)
    numbers = []
    with trio.fail_after(20):
        async with connect(ws_url(w.hub)) as c:
            await ready(c)
            for i in range(12):
                paid = await sell(c, adult, tags[i % len(tags)])
                numbers.append(f"{w.hub.config.store.licence}-{paid['receipt_number']}")
        await w.wait_drained(15)
    faults = await w.admin.faults()
    assert faults["counters"]["dropped"] >= 4  # answers really were lost
    counts = Counter(r["external_number"] for r in await w.receipts())
    assert sorted(counts) == sorted(numbers) and set(counts.values()) == {1}
    # entries whose answer was lost were looked up, not blindly resent
    assert w.hub.metrics.state_errors.labels(w.hub.config.store.licence, "outcome_unknown")._value.get() >= 1


async def test_row_error_dead_letters_only_that_entry_and_retry_after_fix(world: World) -> None:
    w = world
    tags = _pre_rolls(w, 3)
    bad = tags[2]
    # the state does not know this package: its sale will be refused with a row error
    state = await w.admin.state()
    row = next(p for p in state["packages"] if p["label"] == bad)
    await w.admin.upsert_packages(
        [
            {
                "label": bad,
                "item_name": row["item_name"],
                "category": row["category"],
                "unit": "Each",
                "quantity": row["quantity"],
                "finished": True,
            }
        ]
    )
    adult = w.demo.customer("adult").id_scan
    with trio.fail_after(20):
        async with connect(ws_url(w.hub)) as c:
            token = await ready(c)
            good1 = await sell(c, adult, tags[0])
            refused = await sell(c, adult, bad)
            good2 = await sell(c, adult, tags[1])
        lic = w.hub.config.store.licence
        while len(await w.receipts()) < 2 or not any(e.state == "dead" for e in w.outbox()):
            await trio.sleep(0.05)
        async with w.rest(token) as http:
            dead = (await http.get("/api/state/dead-letter")).json()
            assert [d["key"] for d in dead] == [f"{lic}-{refused['receipt_number']}"]
            assert "finished" in dead[0]["error"] and bad in dead[0]["error"]
            numbers = {r["external_number"] for r in await w.receipts()}
            assert numbers == {f"{lic}-{good1['receipt_number']}", f"{lic}-{good2['receipt_number']}"}
            assert w.hub.metrics.state_dead_letter.labels(lic)._value.get() == 1
            # a budtender may not retry; a manager may, after the fix
            await w.admin.upsert_packages(
                [
                    {
                        "label": bad,
                        "item_name": row["item_name"],
                        "category": row["category"],
                        "unit": "Each",
                        "quantity": row["quantity"],
                        "finished": False,
                    }
                ]
            )
            seq = dead[0]["seq"]
            answer = await http.post(f"/api/state/dead-letter/{seq}/retry")
            assert answer.status_code == 200, answer.text
            await w.wait_drained(10)
            assert (await http.get("/api/state/dead-letter")).json() == []
            again = await http.post(f"/api/state/dead-letter/{seq}/retry")
            assert again.status_code == 400 and again.json()["code"] == "conflict"
        async with connect(ws_url(w.hub)) as b:
            btoken = await ready(b, "R2", "ana", drawer=False)
            async with w.rest(btoken) as http:
                assert (await http.get("/api/state/dead-letter")).status_code == 403
    counts = Counter(r["external_number"] for r in await w.receipts())
    assert counts[f"{lic}-{refused['receipt_number']}"] == 1 and len(counts) == 3


def _restarts(w: World, name: str) -> int:
    state = w.hub.supervisor.children[name]
    return state.restarts if state.running else -1


async def test_state_sync_actor_restarted_after_a_crash_sends_with_a_new_sender(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actor makes its sender (an open client) in each run and closes it when the run ends: a restart
    after a crash sends with a new one, not the one the crashed run closed."""
    w = world
    ch = w.hub.services.state_channel
    assert ch is not None
    name = f"state-sync:{ch.licence}"
    tags = [p.tag for p in w.unit_packages("PRE-", 2, min_qty=5)]
    adult = w.demo.customer("adult").id_scan
    real_pass = StateSyncActor.pass_once
    armed: list[bool] = []

    async def pass_once(self: StateSyncActor, sender: Any) -> float:
        if armed and armed.pop():
            raise RuntimeError("the state-sync actor's pass fails once")
        return await real_pass(self, sender)

    monkeypatch.setattr(StateSyncActor, "pass_once", pass_once)
    with trio.fail_after(30):
        async with connect(ws_url(w.hub)) as c:
            await ready(c)
            sold = [(await sell(c, adult, tags[0]))["receipt_number"]]
            await w.wait_drained(10)  # the first run's sender has sent one sale
            armed.append(True)
            while _restarts(w, name) < 1:
                await trio.sleep(0.02)
            sold.append((await sell(c, adult, tags[1]))["receipt_number"])
            await w.wait_drained(10)
    numbers = sorted(r["external_number"] for r in await w.receipts())
    assert numbers == sorted(f"{w.hub.config.store.licence}-{n}" for n in sold)
    assert _restarts(w, name) == 1
