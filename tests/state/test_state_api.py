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
