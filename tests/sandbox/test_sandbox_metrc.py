"""The sandbox's Metrc face over raw HTTP: auth, licence, paging, windows, limits, faults, persistence."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio

from sandbox import demo
from sandbox.testing import SandboxAdmin, running_sandbox

LIC = {"licenseNumber": demo.METRC_LICENSE}
AUTH = (demo.METRC_VENDOR_KEY, demo.METRC_USER_KEY)
LABEL = demo.METRC_PACKAGES[0][0]


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def receipt(external: str, quantity: float = 1, when: str = "2024-05-01T10:00:00.000") -> dict:
    return {
        "SalesDateTime": when,
        "ExternalReceiptNumber": external,
        "SalesCustomerType": "Consumer",
        "Transactions": [
            {"PackageLabel": LABEL, "Quantity": quantity, "UnitOfMeasure": "Each", "TotalAmount": 1.0}
        ],
    }


@pytest.fixture
async def sandbox(tmp_path):
    async with running_sandbox(tmp_path) as handle:
        yield handle


@pytest.fixture
async def http(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.url, auth=AUTH, timeout=5) as client:
        yield client


@pytest.fixture
async def admin(sandbox):
    async with SandboxAdmin(sandbox.url) as client:
        yield client


async def test_auth_and_licence_are_checked(sandbox, http):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=sandbox.url) as anonymous:
            assert (await anonymous.get("/packages/v2/active", params=LIC)).status_code == 401
        async with httpx.AsyncClient(base_url=sandbox.url, auth=("bogus-vendor", demo.METRC_USER_KEY)) as bad:
            assert (await bad.get("/packages/v2/active", params=LIC)).status_code == 401
        missing = await http.get("/packages/v2/active")
        assert missing.status_code == 400 and "licenseNumber" in missing.json()["Message"]
        # a facility the user has no access to: 403 with the documented sentence (M6)
        other = await http.get("/packages/v2/active", params={"licenseNumber": demo.SHIPPER_LICENSE})
        assert other.status_code == 403
        assert other.json() == {
            "Message": "The authenticated user does not have access to the requested resource."
        }
        # licence names bind case-insensitively, as ASP.NET binds them
        assert (
            await http.get("/packages/v2/active", params={"LICENSENUMBER": demo.METRC_LICENSE})
        ).status_code == 200


async def test_routing_errors(http):
    with trio.fail_after(10):
        assert (await http.get("/nothing/here")).status_code == 404
        assert (await http.patch("/sales/v2/receipts", params=LIC)).status_code == 405


async def test_paging_limits(http):
    with trio.fail_after(10):
        assert (await http.get("/packages/v2/active", params=LIC | {"pageSize": 21})).status_code == 400
        page2 = (await http.get("/packages/v2/active", params=LIC | {"pageSize": 3, "pageNumber": 2})).json()
        assert (page2["Page"], page2["RecordsOnPage"], page2["TotalPages"], page2["Total"]) == (2, 3, 3, 8)
        everything = (await http.get("/packages/v2/active", params=LIC)).json()
        assert everything["RecordsOnPage"] == 8  # paging is off unless asked for


async def test_windows_at_most_24_hours_and_exclusive(http):
    with trio.fail_after(10):
        now = datetime.now(UTC)
        too_long = {"lastModifiedStart": z(now - timedelta(hours=25)), "lastModifiedEnd": z(now)}
        assert (await http.get("/packages/v2/active", params=LIC | too_long)).status_code == 400
        half = {"lastModifiedStart": z(now - timedelta(hours=1))}
        assert (await http.get("/packages/v2/active", params=LIC | half)).status_code == 400
        both = {
            "lastModifiedStart": z(now - timedelta(hours=1)),
            "lastModifiedEnd": z(now),
            "salesDateStart": z(now - timedelta(hours=1)),
            "salesDateEnd": z(now),
        }
        response = await http.get("/sales/v2/receipts/active", params=LIC | both)
        assert response.status_code == 400 and "mutually exclusive" in response.json()["Message"]
        offset = {
            "lastModifiedStart": (now - timedelta(hours=2)).isoformat(),
            "lastModifiedEnd": now.isoformat(),
        }
        assert (await http.get("/packages/v2/active", params=LIC | offset)).json()["Total"] == 8


async def test_receipt_validation_rows(http):
    with trio.fail_after(10):
        future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
        body = [
            receipt("OK-1"),
            receipt("BAD-1", quantity=0),
            receipt("BAD-2", when="2024-05-01T10:00:00+02:00"),
            receipt("BAD-3", when=future),
            {**receipt("BAD-4"), "SalesCustomerType": "Tourist"},
        ]
        response = await http.post("/sales/v2/receipts", params=LIC, json=body)
        assert response.status_code == 400
        rows = response.json()
        assert sorted({r["row"] for r in rows}) == [1, 2, 3, 4]
        assert all(set(r) == {"row", "message"} for r in rows)
        # all or nothing: the good first row was not kept either
        # an unknown external number: 401, as documented for one "not valid for the License Number"
        assert (await http.get("/sales/v2/receipts/external/OK-1", params=LIC)).status_code == 401


async def test_camel_case_bodies_bind_too(http):
    with trio.fail_after(10):
        body = [
            {
                "salesDateTime": "2024-05-01T10:00:00",
                "externalReceiptNumber": "camel",
                "salesCustomerType": "Consumer",
                "transactions": [
                    {"packageLabel": LABEL, "quantity": 1, "unitOfMeasure": "Each", "totalAmount": 1}
                ],
            }
        ]
        assert (await http.post("/sales/v2/receipts", params=LIC, json=body)).status_code == 200


async def test_get_rate_limit_answers_429(http, admin):
    with trio.fail_after(10):
        await admin.set_faults(get_rate_per_second=5)
        statuses = [(await http.get("/sales/v2/customertypes")).status_code for _ in range(8)]
        assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}
        limited = await http.get("/sales/v2/customertypes")
        # M6: the reproduced sentence, and no rate-limit headers (none are documented)
        assert "retry-after" not in limited.headers
        assert limited.json() == {
            "Message": "The limit of API calls allowed has been exceeded. "
            "Please pace the usage rate of the API more apart."
        }
        # writes are not rate limited
        assert (await http.post("/sales/v2/receipts", params=LIC, json=[receipt("W-1")])).status_code == 200


async def test_concurrent_get_limit(http, admin):
    with trio.fail_after(10):
        await admin.set_faults(latency_ms=200, get_concurrency=2)
        statuses = []

        async def one():
            statuses.append((await http.get("/sales/v2/customertypes")).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(one)
        assert sorted(statuses) == [200, 200, 429, 429, 429]


async def test_fault_admin(http, admin):
    with trio.fail_after(10):
        assert (await admin.faults())["error_rate"] == 0
        bad = await http.put("/_sandbox/faults", json={"error_rate": 2, "nonsense": 1})
        assert bad.status_code == 400 and "nonsense" in bad.json()["message"]
        await admin.set_faults(latency_ms=150)
        started = time.monotonic()
        await http.get("/sales/v2/customertypes")
        assert time.monotonic() - started >= 0.15
        await admin.set_faults(latency_ms=0, error_rate=1.0)
        response = await http.post("/sales/v2/receipts", params=LIC, json=[receipt("E-1")])
        assert response.status_code == 500
        await admin.clear_faults()
        not_applied = await http.get("/sales/v2/receipts/external/E-1", params=LIC)
        assert not_applied.status_code == 401  # no such receipt for this licence


async def test_outage_window_ends_by_itself(http, admin):
    with trio.fail_after(10):
        await admin.set_faults(outage_seconds=0.3)
        assert (await http.get("/sales/v2/customertypes")).status_code == 503
        assert (await admin.faults())["outage"]
        await trio.sleep(0.35)
        assert (await http.get("/sales/v2/customertypes")).status_code == 200


async def test_every_third_request_is_stored_then_dropped(http, admin):
    with trio.fail_after(10):
        await admin.set_faults(drop_every=3, drop_methods=["POST"])
        outcomes = []
        for n in range(6):
            try:
                response = await http.post("/sales/v2/receipts", params=LIC, json=[receipt(f"D-{n}")])
                outcomes.append(response.status_code)
            except httpx.RemoteProtocolError:
                outcomes.append("dropped")
        assert outcomes == [200, 200, "dropped", 200, 200, "dropped"]
        await admin.clear_faults()
        state = await admin.state()
        assert sorted(r["external_number"] for r in state["receipts"]) == [f"D-{n}" for n in range(6)]


async def test_reset_and_state(http, admin):
    with trio.fail_after(10):
        await http.post("/sales/v2/receipts", params=LIC, json=[receipt("X-1")])
        assert len((await admin.state())["receipts"]) == 1
        await admin.reset(seed=None)
        assert (await admin.state())["packages"] == []
        await admin.reset()
        assert len((await admin.state())["packages"]) == len(demo.METRC_PACKAGES) + len(
            demo.BIOTRACK_INVENTORY
        )
        assert (await http.get("/_sandbox")).text.startswith("The sandbox HTTP server")


async def test_state_persists_across_restarts(tmp_path):
    with trio.fail_after(15):
        async with running_sandbox(tmp_path) as first:
            async with httpx.AsyncClient(base_url=first.url, auth=AUTH) as http:
                assert (
                    await http.post("/sales/v2/receipts", params=LIC, json=[receipt("P-1", 5)])
                ).status_code == 200
        async with running_sandbox(tmp_path) as second:  # reseeding keeps what is there
            async with httpx.AsyncClient(base_url=second.url, auth=AUTH) as http:
                found = (await http.get("/sales/v2/receipts/external/P-1", params=LIC)).json()
                assert found["ExternalReceiptNumber"] == "P-1"  # a bare receipt object
                assert (await http.get(f"/packages/v2/{LABEL}", params=LIC)).json()["Quantity"] == 35


def test_main_rejects_bad_arguments():
    from sandbox.server import main

    with pytest.raises(SystemExit):
        main(["--seed", "nonsense"])
