"""hub.client's wait_snapshot: the latest snapshot counts, a queued older one never answers for a newer state."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from hub.client import HubClient


class FramesIn:
    """Stands in for the WebSocket: get_message hands out the frames the test puts in, in order."""

    def __init__(self) -> None:
        self.send, self.recv = trio.open_memory_channel[str](100)

    async def get_message(self) -> str:
        return await self.recv.receive()

    def put(self, frame: dict[str, Any]) -> None:
        self.send.send_nowait(json.dumps(frame))


def snapshot(cart: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "snapshot", "topic": "register:R1", "state": {"cart": cart}}


def cart(quantity: int, total_cents: int) -> dict[str, Any]:
    lines = [{"quantity": quantity}] if quantity else []
    return {"lines": lines, "total_cents": total_cents}


def one_line(state: dict[str, Any]) -> bool:
    return bool(state.get("cart")) and sum(ln["quantity"] for ln in state["cart"]["lines"]) == 1


async def test_a_queued_snapshot_of_the_last_sale_does_not_answer_for_this_one() -> None:
    ws = FramesIn()
    async with trio.open_nursery() as nursery:
        client = HubClient(ws, nursery)  # type: ignore[arg-type]
        # the last sale: its one-line cart, then paid (the wait for "paid" is answered by the latest)
        ws.put(snapshot(cart(1, 3_037)))
        ws.put(snapshot(None))
        await trio.testing.wait_all_tasks_blocked()  # both read: the latest is "paid", both still queued
        assert (await client.wait_snapshot(lambda s: s.get("cart") is None))["state"]["cart"] is None
        # this sale: checked in, the package's line not yet seen
        ws.put(snapshot(cart(0, 0)))
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.TooSlowError):
            await client.wait_snapshot(one_line, timeout=0.2)
        ws.put(snapshot(cart(1, 3_538)))
        got = await client.wait_snapshot(one_line, timeout=5)
        assert got["state"]["cart"]["total_cents"] == 3_538
        nursery.cancel_scope.cancel()
