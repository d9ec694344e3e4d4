"""Blind count: the expected figure is never sent to the register before the count is submitted."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio

from hub.app import Hub
from hub.client import ClientError, HubClient, connect
from hub.sale import inventory
from tests.backoffice.office_helpers import FLOAT, approval, pieces, ready, sell
from tests.conftest import ws_url


def spy(c: HubClient) -> list[str]:
    """Every frame the hub sends this client from now on (the reader calls ws.get_message each time)."""
    frames: list[str] = []
    original = c.ws.get_message

    async def get_message() -> Any:
        text = await original()
        frames.append(text if isinstance(text, str) else text.decode())
        return text

    c.ws.get_message = get_message  # type: ignore[method-assign]
    return frames


def leaks(frames: list[str], amount_cents: int) -> list[str]:
    """Frames that carry the amount as cents or as dollars, or any field named like an expected figure."""
    dollars = f"{amount_cents // 100}.{amount_cents % 100:02d}"
    out = []
    for f in frames:
        if "expected" in f or dollars in f:
            out.append(f)
            continue
        if amount_cents in _ints(json.loads(f)):
            out.append(f)
    return out


def _ints(v: Any) -> list[int]:
    if isinstance(v, dict):
        return [n for x in v.values() for n in _ints(x)]
    if isinstance(v, list):
        return [n for x in v for n in _ints(x)]
    return [v] if isinstance(v, int) and not isinstance(v, bool) else []


async def test_expected_never_sent_before_the_count(office_hub: Hub) -> None:
    hub = office_hub
    adult = hub.services.demo.store.customer("adult").id_scan
    tag = next(
        p.tag
        for p in inventory.packages_of(hub.store, "FLW-003")
        if p.status == "active" and p.quantity > 3 and p.lab_testing == "passed"
    )
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as reg, connect(ws_url(hub)) as office:
            frames = spy(reg)
            office_frames = spy(office)
            await ready(reg, "R1", "ana")
            await ready(office, "OFFICE", "maria")
            await reg.request("open_drawer", counted=FLOAT, witness="maria", witness_pin="3333")
            sale = await sell(reg, adult, tag, 1, extra=1_13)
            await reg.request(
                "drawer_movement",
                kind="paid_in",
                amount_cents=2_000,
                reason="change from the safe",
                approval=approval("more coins"),
            )
            expected = 26_000 + sale["total_cents"] + 2_000
            # a movement the drawer cannot cover is refused without saying what it holds
            with pytest.raises(ClientError) as e:
                await reg.request(
                    "drawer_movement",
                    kind="paid_out",
                    amount_cents=expected + 1,
                    reason="probe the drawer",
                    approval=approval("probe"),
                )
            assert e.value.code == "not_enough_cash"
            # the back office's drawer list does not show it either while the drawer is open
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
                listing = await http.get(
                    "/api/backoffice/drawers", headers={"authorization": f"Bearer {office.session_token}"}
                )
                assert listing.status_code == 200
                [row] = listing.json()["drawers"]
                assert row["status"] == "open" and row["summary"] is None
                frames.append(listing.text)
            assert leaks(frames, expected) == []
            assert leaks(office_frames, expected) == []

            counted = await reg.request("blind_count", counted=pieces(expected + 300))
            # only now: expected, counted and the variance
            assert counted["expected_cents"] == expected
            assert counted["variance_cents"] == 300 and counted["needs_sign_off"] is True
            assert leaks(frames, expected) != []
            snap = await reg.wait_snapshot(lambda s: s["drawer"]["open"] is False)
            assert snap["state"]["drawer"]["session_id"] is None
            # a counted drawer takes no more cash
            with pytest.raises(ClientError) as e:
                await reg.request("blind_count", counted=pieces(expected))
            assert e.value.code == "no_drawer"
