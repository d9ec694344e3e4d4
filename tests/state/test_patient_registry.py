"""Medical check-in asks the state's registry (Metrc patient status on the sandbox): the state-held
allotment feeds the limits, an inactive registration is refused, an unreachable registry follows policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from hub.client import ClientError, connect
from tests.conftest import ws_url
from tests.state.conftest import World, ready


@pytest.fixture
async def world(nursery, tmp_path, hub_factory, monkeypatch, request):  # type: ignore[no-untyped-def]
    """A Michigan store: Metrc keeps the patient registry and its own allotment."""
    import tests.state.conftest as base

    real = base.make_config

    def michigan(*args, **kwargs):  # type: ignore[no-untyped-def]
        cfg = real(*args, **kwargs)
        cfg.store.jurisdiction = "MI"
        cfg.store.time_zone = "America/Detroit"
        return cfg

    monkeypatch.setattr(base, "make_config", michigan)
    async for w in base.world.__wrapped__(nursery, tmp_path, hub_factory, request):  # type: ignore[attr-defined]
        yield w


async def _check_in_patient(c, world: World, number: str):  # type: ignore[no-untyped-def]
    await c.request("scan", data=world.demo.customer("medical").id_scan)
    expiry = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()
    return await c.request(
        "set_customer_type", customer_type="medical", registration_number=number, registration_expiry=expiry
    )


async def test_state_allotment_is_the_stricter_figure(world: World) -> None:
    # the state says this patient has 0.1 oz of flower left (2.834 g), far under Michigan's 2.5 oz a day
    await world.admin.upsert_patients(
        [
            {
                "patient_license": "PAT-0001",
                "active": True,
                "flower_oz": 0.1,
                "thc_oz": 0.0,
                "purchase_days": 30,
            }
        ]
    )
    pkg = world.unit_packages("FLW-001", 1)[0]  # 3.5 g
    with trio.fail_after(30):
        async with connect(ws_url(world.hub)) as c:
            await ready(c, drawer=False)
            res = await _check_in_patient(c, world, "PAT-0001")
            assert res["allowed"] is True
            snap = await c.wait_snapshot(lambda s: s["customer"] and s["customer"]["type"] == "medical")
            gauge = next(g for g in snap["state"]["allotment"] if g["bucket"] == "total")
            assert gauge["remaining"] == 2_834
            with pytest.raises(ClientError) as e:
                await c.request("add_package", tag=pkg.tag)
            assert e.value.code == "over_limit" and "3.5 g of 2.834 g" in e.value.message


async def test_inactive_registration_refused(world: World) -> None:
    await world.admin.upsert_patients(
        [
            {
                "patient_license": "PAT-0002",
                "active": False,
                "flower_oz": 2.0,
                "thc_oz": 0.0,
                "purchase_days": 30,
            }
        ]
    )
    with trio.fail_after(30):
        async with connect(ws_url(world.hub)) as c:
            await ready(c, drawer=False)
            res = await _check_in_patient(c, world, "PAT-0002")
            assert res["allowed"] is False
            assert any(
                "registry" in r.lower() or "inactive" in r.lower() or "not active" in r.lower()
                for r in res["reasons"]
            ), res["reasons"]


async def test_registry_unreachable_follows_the_jurisdiction_policy(world: World) -> None:
    await world.admin.set_faults(outage=True)
    with trio.fail_after(30):
        async with connect(ws_url(world.hub)) as c:
            await ready(c, drawer=False)
            t0 = trio.current_time()
            res = await _check_in_patient(c, world, "PAT-0003")
            assert trio.current_time() - t0 < 5  # the counter does not freeze on the state
            # Michigan: "registry_unreachable = refuse" — no medical sale without the registry's word
            assert res["allowed"] is False
            assert any("registry" in r.lower() for r in res["reasons"]), res["reasons"]
    await world.admin.clear_faults()
