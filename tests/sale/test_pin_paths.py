"""Every PIN typed at a register goes through one lockout (issue 11): login, a witness for a drawer, a
manager's approval and the incoming cashier of a hand-over share one failure counter per account; every
failure is audited (and survives the refusal of the request that carried it); a locked account is refused
on every path, its right PIN included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from hub.app import Hub
from hub.audit import AuditEntry
from hub.client import ClientError, HubClient, connect
from hub.config import StoreConfig
from hub.store.env import decode
from hub.wiring import Features, SaleOptions
from tests.conftest import DEMO_PAIRING, PINS, ws_url

FLOAT = {"B20": 10, "B5": 10, "C25": 40}
APPROVAL_REASON = "drop to the safe"


@pytest.fixture
async def store_hub(hub_factory: Callable[..., Any], config: StoreConfig) -> Hub:
    """The sale and the back office (drawer movements and hand-overs carry PINs too)."""

    config.server.demo = True

    return await hub_factory(config, features=Features(sale=SaleOptions(demo=True), backoffice=True))


def audit_entries(hub: Hub) -> list[AuditEntry]:
    with hub.store.read() as txn:
        return [decode(v, AuditEntry) for _, v in txn.cursor(db=hub.store.db("audit"))]


def failures_of(hub: Hub, staff: str) -> list[AuditEntry]:
    return [e for e in audit_entries(hub) if e.action in ("pin_failed", "login_failed") and e.staff == staff]


async def refused(c: HubClient, type_: str, **fields: Any) -> ClientError:
    with pytest.raises(ClientError) as e:
        await c.request(type_, **fields)
    return e.value


async def test_witness_guessing_locks_after_five_audited_and_locked_everywhere(store_hub: Hub) -> None:
    hub = store_hub
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            codes = [
                (await refused(c, "open_drawer", counted=FLOAT, witness="tom", witness_pin="9999")).code
                for _ in range(5)
            ]
            assert codes == ["approval_refused"] * 4 + ["locked_out"]
            # the right PIN no longer opens the drawer
            err = await refused(c, "open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])
            assert err.code == "locked_out" and "locked" in err.message
        # ... nor logs tom in, on another register
        async with connect(ws_url(hub)) as c2:
            await c2.pair(DEMO_PAIRING["R2"])
            with pytest.raises(ClientError) as e:
                await c2.login("tom", PINS["tom"])
            assert e.value.code == "locked_out"
    failed = [e for e in failures_of(hub, "tom") if e.action == "pin_failed"]
    assert len(failed) == 5 and all(e.detail["purpose"] == "witness" for e in failed)
    assert all(e.detail["by"] == "maria" for e in failed)
    actions = [e.action for e in audit_entries(hub) if e.staff == "tom"]
    assert "lockout" in actions and "pin_refused_locked" in actions and "login_refused_locked" in actions
    assert hub.store.count("drawers") == 0  # no drawer was opened by the guesses


async def test_guesses_spread_over_paths_share_one_counter(store_hub: Hub) -> None:
    """2 wrong logins + 1 wrong witness + 2 wrong approvals = 5: the account locks, and the incoming cashier
    of a hand-over is refused with the right PIN."""
    hub = store_hub
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            for _ in range(2):
                with pytest.raises(ClientError) as e:
                    await c.login("root", "0000")
                assert e.value.code == "bad_login"
            await c.login("maria", PINS["maria"])
            err = await refused(c, "open_drawer", counted=FLOAT, witness="root", witness_pin="0000")
            assert err.code == "approval_refused"
            await c.request("open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])
            approval = {"manager": "root", "pin": "0000", "reason": APPROVAL_REASON}
            for expected in ("approval_refused", "locked_out"):
                err = await refused(
                    c,
                    "drawer_movement",
                    kind="drop",
                    bag_number="BAG-1",
                    amount_cents=100,
                    reason=APPROVAL_REASON,
                    approval=approval,
                )
                assert err.code == expected
            good = {"manager": "root", "pin": PINS["root"], "reason": APPROVAL_REASON}
            err = await refused(
                c,
                "drawer_movement",
                kind="drop",
                amount_cents=100,
                bag_number="BAG-1",
                reason=APPROVAL_REASON,
                approval=good,
            )
            assert err.code == "locked_out"
            err = await refused(
                c, "hand_over_drawer", counted=FLOAT, incoming="root", incoming_pin=PINS["root"]
            )
            assert err.code == "locked_out"
            # an account that is not locked still works on every path
            await c.request(
                "drawer_movement",
                kind="drop",
                bag_number="BAG-1",
                amount_cents=100,
                reason=APPROVAL_REASON,
                approval={"manager": "maria", "pin": PINS["maria"], "reason": APPROVAL_REASON},
            )
    purposes = [e.detail.get("purpose", "login") for e in failures_of(hub, "root")]
    assert purposes == ["login", "login", "witness", "approval", "approval"]
    refused_after = [e for e in audit_entries(hub) if e.action == "pin_refused_locked" and e.staff == "root"]
    assert {e.detail["purpose"] for e in refused_after} == {"approval", "incoming"}


async def test_login_lockout_holds_for_witness_and_approval(store_hub: Hub) -> None:
    hub = store_hub
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            for _ in range(5):
                with pytest.raises(ClientError):
                    await c.login("tom", "8888")
            await c.login("maria", PINS["maria"])
            err = await refused(c, "open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])
            assert err.code == "locked_out"


async def test_wrong_second_pins_are_audited_though_the_request_is_refused(store_hub: Hub) -> None:
    """The failure's audit entry is its own transaction: the refused open_drawer rolls nothing of it back."""
    hub = store_hub
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("ana", PINS["ana"])
            before = len(audit_entries(hub))
            await refused(c, "open_drawer", counted=FLOAT, witness="tom", witness_pin="1234")
            await refused(c, "open_drawer", counted=FLOAT, witness="nobody", witness_pin="1234")
    new = audit_entries(hub)[before:]
    assert [(e.action, e.staff or e.detail.get("staff")) for e in new] == [
        ("pin_failed", "tom"),
        ("pin_failed", "nobody"),
    ]
    assert new[1].detail["reason"] == "unknown"
