"""The sandbox's BioTrack face over raw HTTP: JSON-RPC sessions and errors, REST auth and validation."""

from __future__ import annotations

import httpx
import pytest
import trio

from sandbox import demo
from sandbox.testing import SandboxAdmin, running_sandbox

BARCODE = demo.BIOTRACK_INVENTORY[0][0]


@pytest.fixture
async def sandbox(tmp_path):
    async with running_sandbox(tmp_path) as handle:
        yield handle


@pytest.fixture
async def http(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5) as client:
        yield client


async def rpc(http, body):
    response = await http.post("/biotrack/serverjson.asp", json=body, headers={"content-type": "text/JSON"})
    assert response.status_code == 200  # BioTrack carries logical errors in an HTTP 200
    return response.json()


async def login(http):
    reply = await rpc(
        http,
        {
            "action": "login",
            "license_number": demo.BIOTRACK_LICENSE,
            "username": demo.BIOTRACK_USERNAME,
            "password": demo.BIOTRACK_PASSWORD,
        },
    )
    assert reply["success"] == 1
    return reply["sessionid"]


async def test_rpc_login_and_session_errors(http, sandbox):
    with trio.fail_after(10):
        bad = await rpc(
            http,
            {"action": "login", "license_number": demo.BIOTRACK_LICENSE, "username": "x", "password": "y"},
        )
        assert bad["success"] == 0 and bad["errorcode"] and bad["error"]
        no_session = await rpc(http, {"action": "sync_check"})
        assert no_session["success"] == 0 and "expired" in no_session["error"]
        sid = await login(http)
        assert (await rpc(http, {"action": "sync_check", "sessionid": sid}))["success"] == 1
        async with SandboxAdmin(sandbox.url) as admin:
            await admin.expire_biotrack_sessions()
        assert "expired" in (await rpc(http, {"action": "sync_check", "sessionid": sid}))["error"]


async def test_rpc_malformed_and_unknown(http):
    with trio.fail_after(10):
        response = await http.post("/biotrack/serverjson.asp", content=b"{not json")
        assert response.json()["success"] == 0
        sid = await login(http)
        assert "Unsupported" in (await rpc(http, {"action": "plant_harvest", "sessionid": sid}))["error"]
        missing = await rpc(
            http,
            {"action": "sale_dispense", "sessionid": sid, "sale_time": 1, "data": [{"barcodeid": BARCODE}]},
        )
        assert missing["success"] == 0


async def test_rpc_refused_sale_applies_nothing_and_is_not_remembered_by_nonce(http):
    with trio.fail_after(10):
        sid = await login(http)
        sale = {
            "action": "sale_dispense",
            "sessionid": sid,
            "nonce": "n",
            "sale_time": 1_700_000_000,
            "data": [{"barcodeid": BARCODE, "quantity": 41, "price": "1.00"}],
        }
        assert (await rpc(http, sale))["success"] == 0
        sale["data"][0]["quantity"] = 40
        # the same nonce after a refusal is a fresh attempt, not a replay of the refusal
        assert (await rpc(http, sale))["success"] == 1
        inventory = await rpc(http, {"action": "sync_inventory", "sessionid": sid, "download": 1})
        assert {row["id"]: row["remaining_quantity"] for row in inventory["inventory"]}[BARCODE] == "0.000000"


async def test_rpc_refund_cannot_exceed_the_sale(http):
    with trio.fail_after(10):
        sid = await login(http)
        sale = await rpc(
            http,
            {
                "action": "sale_dispense",
                "sessionid": sid,
                "sale_time": 1_700_000_000,
                "data": [{"barcodeid": BARCODE, "quantity": 2, "price": "20.00"}],
            },
        )
        tid = sale["transactionid"]
        refund = {
            "action": "sale_refund",
            "sessionid": sid,
            "transactionid": tid,
            "data": [{"barcodeid": BARCODE, "quantity": 3, "price": "30.00"}],
        }
        assert "exceeds" in (await rpc(http, refund))["error"]
        refund["data"][0]["quantity"] = 2
        assert (await rpc(http, refund))["success"] == 1
        assert (await rpc(http, refund))["success"] == 0


async def test_rest_requires_a_session_and_matching_location(http):
    with trio.fail_after(10):
        assert (await http.post("/biotrack/v1/dispense", json={})).status_code == 401
        token = (
            await http.post(
                "/biotrack/v1/login",
                json={
                    "UBI": demo.BIOTRACK_UBI,
                    "Username": demo.BIOTRACK_USERNAME,
                    "Password": demo.BIOTRACK_PASSWORD,
                },
            )
        ).json()["Session"]
        headers = {"authorization": f"Bearer {token}"}
        body = {
            "LocationLicense": "someone-else",
            "RequestID": "r",
            "Datetime": "2024-01-01T00:00:00Z",
            "Items": [{"Barcode": BARCODE, "Price": 1.0, "Quantity": 1}],
        }
        response = await http.post("/biotrack/v1/dispense", json=body, headers=headers)
        assert response.status_code == 400 and "LocationLicense" in response.json()["Error"]
        body["LocationLicense"] = demo.BIOTRACK_LICENSE
        del body["RequestID"]
        assert (await http.post("/biotrack/v1/dispense", json=body, headers=headers)).status_code == 400
        body["RequestID"] = "r"
        assert (await http.post("/biotrack/v1/dispense", json=body, headers=headers)).status_code == 200
        assert (await http.get("/biotrack/heartbeat")).json() == {"Status": "OK"}


async def test_rest_medical_sale_respects_the_card(http):
    with trio.fail_after(10):
        token = (
            await http.post(
                "/biotrack/v1/user/login",
                json={
                    "UBI": demo.BIOTRACK_UBI,
                    "Username": demo.BIOTRACK_USERNAME,
                    "Password": demo.BIOTRACK_PASSWORD,
                },
            )
        ).json()["session"]  # 2024 ([I] mock): lower-case
        headers = {"authorization": f"Bearer {token}"}
        grams = demo.BIOTRACK_INVENTORY[1][0]
        body = {
            "Location": demo.BIOTRACK_LICENSE,  # a string: 2024 takes an integer ([I] mock)
            "RequestID": "m-1",
            "Datetime": "2024-01-01T00:00:00-07:00",
            "Type": "MEDICAL",
            "CardID": demo.BIOTRACK_CARDS[1][0],
            "Item": [{"Barcode": grams, "Price": 10.0, "Quantity": 1.0}],
        }
        as_text = await http.post("/biotrack/v1/sale", json=body, headers=headers)
        assert as_text.status_code == 400 and "Location of type int" in as_text.json()["Error"]
        body["Location"] = int(demo.BIOTRACK_LICENSE)
        inactive = await http.post("/biotrack/v1/sale", json=body, headers=headers)
        assert inactive.status_code == 400 and "not active" in inactive.json()["Error"]
        body |= {
            "CardID": demo.BIOTRACK_CARDS[0][0],
            "RequestID": "m-2",
            "Item": [{"Barcode": grams, "Price": 10.0, "Quantity": 231.0}],
        }
        over = await http.post("/biotrack/v1/sale", json=body, headers=headers)
        assert over.status_code == 400 and "remaining" in over.json()["Error"]
