"""Fewer, cheaper frames per change: a due snapshot travels in the reply's frame, a waiting one on the hub-wide tick."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url

from hub.app import Hub
from hub.client import HubClient, connect
from hub.config import StoreConfig
from hub.live.frames import Ok, encode, with_snapshot
from hub.live.server import SNAPSHOT_INTERVAL, Connection
from hub.ticker import Ticker
from hub.wiring import Features, SaleOptions
from tests.conftest import DEMO_PAIRING, PINS, ws_url

TOPIC = "register:R1"


def _connection(hub: Hub) -> Connection:
    subscribers = hub.topics[TOPIC].subscribers
    assert len(subscribers) == 1
    conn = next(iter(subscribers))
    assert isinstance(conn, Connection)
    return conn


def test_a_snapshot_is_spliced_into_the_reply_as_its_snapshot_member() -> None:
    reply = encode(Ok(id="m-1", result={"n": 1}))
    snap = '{"type":"snapshot","topic":"register:R1","version":7,"state":{"a":[1,2]}}'
    frame = json.loads(with_snapshot(reply, snap))
    assert frame.pop("snapshot") == json.loads(snap)
    assert frame == json.loads(reply)


async def _wait_quiet(c: HubClient) -> None:
    """Past the snapshot interval since the last snapshot this client was sent: the next one is due."""
    await trio.sleep(SNAPSHOT_INTERVAL * 1.5)


async def test_a_reply_carries_its_change_s_snapshot_and_a_second_screen_gets_a_snapshot_frame(
    hub: Hub,
) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as one:
            await one.pair(DEMO_PAIRING["R1"])
            # the pairing's answer carries the register's whole state: a new screen has it with its answer
            assert one.snapshots_in_replies == 1 and one.snapshots[TOPIC]["state"]["register"] == "R1"
            await one.login("ana", PINS["ana"])
            async with connect(ws_url(hub)) as two:
                hello = await two.hello(one.device_token or "")
                assert hello["resumed"] is False
                assert two.snapshots_in_replies == 1  # a reconnecting screen: the whole state first
                assert two.snapshots[TOPIC]["state"]["staff"]["id"] == "ana"
                await one.wait_snapshot(lambda s: s["connected"] == 2)
                await _wait_quiet(one)
                before = one.snapshots_in_replies
                await one.request("logout")
                # the reply itself brought the change's state: nothing else had to arrive first
                assert one.snapshots_in_replies == before + 1
                assert one.snapshots[TOPIC]["state"]["staff"] is None
                # the second screen sent no command: it gets the same final state in a frame of its own
                snap = await two.wait_snapshot(lambda s: s["staff"] is None)
                assert snap["version"] >= one.snapshots[TOPIC]["version"]
                assert two.snapshots_in_replies == 1


@pytest.fixture
async def sale_hub(hub_factory: Callable[..., Any], config: StoreConfig) -> Hub:
    config.server.demo = True
    return await hub_factory(config, features=Features(sale=SaleOptions(demo=True)))  # type: ignore[no-any-return]


async def test_the_stored_reply_stays_bare_and_the_frame_sent_is_it_plus_the_snapshot(sale_hub: Hub) -> None:
    """The idempotency store holds the reply without any snapshot (it is spliced in at send time), so a
    retried id gets the same reply, with the snapshot due then if any."""
    hub = sale_hub
    licence = hub.services.demo.store.customer("adult").id_scan
    with trio.fail_after(30):
        async with open_websocket_url(ws_url(hub)) as ws:
            frames: list[dict[str, Any]] = [json.loads(await ws.get_message())]  # welcome

            async def ask(frame: dict[str, Any]) -> dict[str, Any]:
                await ws.send_message(json.dumps(frame))
                while True:
                    got = json.loads(await ws.get_message())
                    frames.append(got)
                    if got.get("id") == frame["id"]:
                        return got

            paired = await ask({"type": "pair", "id": "p-1", "code": DEMO_PAIRING["R1"]})
            assert paired["snapshot"]["topic"] == TOPIC and paired["snapshot"]["type"] == "snapshot"
            await ask({"type": "login", "id": "l-1", "staff": "maria", "pin": PINS["maria"]})
            await trio.sleep(SNAPSHOT_INTERVAL * 1.5)
            scan = {"type": "scan", "id": "s-1", "data": licence}
            first = await ask(scan)
            assert first["type"] == "ok" and first["result"]["kind"] == "id"
            # the change's own state came with its answer
            assert first["snapshot"]["state"]["customer"]["decision"]["allowed"] is True
            stored = hub.replies.find(hub.store, "R1", "s-1")
            assert stored is not None
            assert b'"snapshot"' not in bytes(stored[0])
            assert json.loads(bytes(stored[0])) == {k: v for k, v in first.items() if k != "snapshot"}
            again = await ask(scan)  # a retry: answered from the stored reply, not applied again
            assert {k: v for k, v in again.items() if k != "snapshot"} == json.loads(bytes(stored[0]))
            versions = [f["version"] for f in frames if f.get("type") == "snapshot"] + [
                f["snapshot"]["version"] for f in frames if "snapshot" in f
            ]
            assert len(set(versions)) == len(versions)  # each version sent once, in one place or the other


async def test_an_idle_attached_screen_costs_no_tick(hub: Hub) -> None:
    """A connection with nothing pending waits on nothing: the hub-wide tick sleeps while nobody waits."""
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            conn = _connection(hub)
            await c.login("ana", PINS["ana"])
            while conn._snap_pending:  # noqa: SLF001  (a snapshot still waiting for its interval)
                await trio.sleep(SNAPSHOT_INTERVAL / 4)
            await trio.sleep(SNAPSHOT_INTERVAL)  # the tick that found nothing pending has run
            ticks = conn.ticker.ticks
            await trio.sleep(SNAPSHOT_INTERVAL * 5)
            assert conn.ticker.ticks == ticks
            assert not conn.ticker.waiting(conn)


class _Waiter:
    def __init__(self, until: int, fail: bool = False) -> None:
        self.until = until
        self.fail = fail
        self.asked: list[float] = []

    def tick(self, now: float) -> bool:
        self.asked.append(now)
        if self.fail:
            raise RuntimeError("a bug in one party")
        return len(self.asked) >= self.until


async def test_the_ticker_asks_each_waiter_once_a_period_until_it_is_done_and_sleeps_when_none_waits(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    ticker = Ticker(0.01)
    a, b, broken = _Waiter(3), _Waiter(1), _Waiter(1, fail=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker.run)
        await trio.sleep(1)
        assert ticker.ticks == 0  # nobody waits: no tick
        ticker.want(a)
        ticker.want(broken)
        ticker.want(b)
        await trio.sleep(1)
        assert len(a.asked) == 3 and len(b.asked) == 1 and len(broken.asked) == 1
        assert a.asked[1] - a.asked[0] == pytest.approx(0.01)
        assert ticker.ticks == 3  # and none since the last waiter was done
        assert "a tick failed" in caplog.text
        ticker.want(b)
        ticker.drop(b)
        await trio.sleep(1)
        assert len(b.asked) == 1
        nursery.cancel_scope.cancel()
