"""The pull child restarted after a crash pulls from the sandbox again over real HTTP: its client is the
hub's (hub/state_channel/feature.py ``hold_reader``), not one run's.

``run_schedule`` keeps every failing pull to itself (``last_pull_error``), so no state answer crashes the
pull child: the crash is injected around it, after a first real pull.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio

from hub.state_channel import feature
from hub.state_channel.pulls import manifests, run_schedule
from sandbox import demo as sbx
from tests.state.conftest import World, connect, ready, ws_url

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
