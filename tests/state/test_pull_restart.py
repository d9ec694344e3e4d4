"""The state channel's supervised children restarted after a crash keep talking to the sandbox over real
HTTP: the pull schedule (its client is the hub's, not one run's) and the state-sync actor (a sender per run).

``run_schedule`` keeps every failing pull to itself (``last_pull_error``), so no state answer crashes the
pull child: the crash is injected around it, after a first real pull.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio

from actors.state_sync import StateSyncActor
from hub.state_channel import feature
from hub.state_channel.pulls import manifests, run_schedule
from sandbox import demo as sbx
from tests.state.conftest import World, connect, ready, sell, ws_url

STATE_PULL_EVERY = 0.3  # the conftest's world pulls on its timer


class ChildFault(Exception):
    """The fault injected into one run of a supervised child."""


@pytest.fixture(autouse=True)
def pull_child_crashes_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first run of the pull child pulls for real, then crashes; later runs are the real schedule."""
    crashed: list[str] = []

    async def schedule(hub: Any, channel: Any, *, task_status: trio.TaskStatus[Any]) -> None:
        if crashed:
            await run_schedule(hub, channel, task_status=task_status)
            return
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_schedule, hub, channel))
            task_status.started()
            with trio.fail_after(10):
                while not channel.state_view:  # the first pull came back through the client
                    await trio.sleep(0.02)
            crashed.append(channel.licence)
            raise ChildFault("the pull child's first run fails")

    monkeypatch.setattr(feature, "run_schedule", schedule)
    return crashed


def _restarts(w: World, name: str) -> int:
    state = w.hub.supervisor.children[name]
    return state.restarts if state.running else -1


async def test_pull_child_restarted_after_a_crash_pulls_again_with_an_open_client(
    world: World, pull_child_crashes_once: list[str]
) -> None:
    w = world
    ch = w.hub.services.state_channel
    assert ch is not None
    name = f"state-pull:{ch.licence}"
    with trio.fail_after(20):
        while _restarts(w, name) < 1:
            await trio.sleep(0.02)
    assert pull_child_crashes_once == [ch.licence]
    restarted_at = w.hub.metrics.state_last_pull.labels(ch.licence)._value.get()

    # the state changes after the restart: a package's count, and a delivery on its way
    pkg = w.unit_packages("FLW-0", 1, min_qty=10)[0]
    row = next(p for p in (await w.admin.state())["packages"] if p["label"] == pkg.tag)
    await w.admin.upsert_packages(
        [
            {
                "label": pkg.tag,
                "item_name": row["item_name"],
                "category": row["category"],
                "unit": "Each",
                "quantity": pkg.quantity + 3,
            }
        ]
    )
    label = "1A4FF0300000387000000901"
    await w.admin.add_transfer(
        {
            "manifest": "0000999901",
            "shipper_license": "C11-0000002-LIC",
            "shipper_name": "Restart Farms",
            "recipient_license": sbx.METRC_LICENSE,
            "packages": [
                {
                    "label": label,
                    "item_name": "Blue Dream 3.5g",
                    "category": "Buds",
                    "unit": "Each",
                    "quantity": 7,
                }
            ],
        }
    )
    with trio.move_on_after(20):  # the assertions below say what did not come
        while ch.state_view.get(pkg.tag, (0.0,))[0] != pkg.quantity + 3 or not any(
            m.manifest == "0000999901" for m in manifests(w.hub.store)
        ):
            await trio.sleep(0.05)
    assert ch.last_pull_error == ""
    assert ch.state_view[pkg.tag][0] == pkg.quantity + 3
    [m] = [m for m in manifests(w.hub.store) if m.manifest == "0000999901"]
    assert [(ln.label, ln.shipped) for ln in m.lines] == [(label, 7.0)]
    assert w.hub.metrics.state_last_pull.labels(ch.licence)._value.get() > restarted_at
    assert _restarts(w, name) == 1

    # the back office asks the state through the same client: open too
    with trio.fail_after(20):
        async with connect(ws_url(w.hub)) as c:
            token = await ready(c, "OFFICE", drawer=False)
            async with w.rest(token) as http:
                reasons = await http.get("/api/state/adjust-reasons")
                assert reasons.status_code == 200, reasons.text
                assert reasons.json()


async def test_state_sync_actor_restarted_after_a_crash_sends_with_a_new_sender(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
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
            raise ChildFault("the state-sync actor's pass fails once")
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
