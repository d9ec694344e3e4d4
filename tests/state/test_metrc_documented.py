"""The Metrc client against Metrc's own documented examples, not against our sandbox.

Every answer below is an "Example Response" Metrc documents (``documented/metrc_v2.json``, each entry with
its source), served as-is to ``drivers.metrc.MetrcClient`` through an httpx mock transport, and again with
every key in camelCase (some states answer that way; state-api-documented-shapes.md M0). Every request the
client sends is checked against the documented request example: its field names, their types, and the
query parameters Metrc takes.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from drivers.metrc import MetrcClient
from drivers.state_errors import RateLimited, StateAuthError, StateProtocolError, StateRejected
from hub.domain.state_payloads import (
    StateAdjustment,
    StateSale,
    StateSaleLine,
    metrc_adjustment,
    metrc_receipt,
    metrc_receipt_update,
)

DOCUMENTED: dict[str, Any] = json.loads((Path(__file__).parent / "documented" / "metrc_v2.json").read_text())
# M0: the calls that take no licenseNumber
NO_LICENCE = (
    "/facilities/v2",
    "/unitsofmeasure/v2/",
    "/sales/v2/customertypes",
    "/transfers/v2/deliveries/packages/states",
    "/deliveries",  # /transfers/v2/{id}/deliveries
    "/packages",  # /transfers/v2/deliveries/{id}/packages (checked with the path below)
)


def camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


class Metrc:
    """A mock Metrc answering the documented examples; it keeps every request."""

    def __init__(self, casing: str = "pascal", overrides: dict[str, Any] | None = None) -> None:
        self.casing = casing
        self.requests: list[httpx.Request] = []
        self.answers: dict[tuple[str, str], tuple[int, Any]] = {}
        for name, fx in DOCUMENTED.items():
            if name.startswith(("_", "error_")) or name.endswith("_older"):
                continue
            self.answers[(fx["method"], fx["path"])] = (fx.get("status", 200), fx["response"])
        self.answers |= overrides or {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.get((request.method, request.url.path), (404, {"Message": "not found"}))
        if body is None:
            return httpx.Response(status)
        return httpx.Response(status, json=camel(body) if self.casing == "camel" else body)

    def client(self) -> MetrcClient:
        return MetrcClient(
            "https://api-ca.metrc.example",
            "vendor",
            "user",
            "123-ABC",
            transport=httpx.MockTransport(self.handler),
        )


def response(name: str) -> Any:
    return copy.deepcopy(DOCUMENTED[name]["response"])


def test_every_fixture_names_its_source() -> None:
    for name, fx in DOCUMENTED.items():
        if not name.startswith("_"):
            assert fx["source"].startswith("reference/state-api-documented-shapes.md M"), name


@pytest.mark.parametrize("casing", ["pascal", "camel"])
async def test_the_documented_answers_decode_to_the_documented_values(casing: str) -> None:
    metrc = Metrc(casing)
    with trio.fail_after(10):
        async with metrc.client() as c:
            receipt = await c.receipt(1)
            assert receipt is not None
            assert (receipt.id, receipt.external_receipt_number, receipt.sales_date_time) == (
                1,
                "ABC-123",
                "2016-01-01T17:35:45.000",
            )
            assert receipt.transactions == [] and receipt.archived_date is None and not receipt.is_final
            # the lookup before any resend: a bare receipt object
            [found] = await c.receipts_by_external_number("ABC-123")
            assert found.id == 1 and found.external_receipt_number == "ABC-123"
            # paged wrapper
            assert [r.external_receipt_number for r in await c.receipts_active()] == ["ABC-123", "ABC-124"]
            # bare arrays
            assert await c.customer_types() == [
                "Consumer",
                "Patient",
                "Caregiver",
                "ExternalPatient",
                "NonResidentConsumer",
            ]
            assert await c.delivery_package_states() == ["Shipped", "Rejected", "Accepted", "Returned"]
            units = await c.units_of_measure()
            assert [(u.name, u.abbreviation, u.quantity_type) for u in units][:2] == [
                ("Each", "ea", "CountBased"),
                ("Ounces", "oz", "WeightBased"),
            ]
            assert len(units) == 6
            facilities = await c.facilities()
            assert [(f.license.number, f.license.license_type) for f in facilities] == [
                ("403-X0001", "Medical Cultivation"),
                ("402-X0002", "Medical Dispensary"),
            ]
            # packages
            packages = await c.packages_active()
            assert [(p.id, p.label, p.quantity, p.unit_of_measure_name) for p in packages] == [
                (2, "ABCDEF012345670000010042", 1.0, "Ounces"),
                (3, "ABCDEF012345670000010043", 1.0, "Ounces"),
            ]
            assert packages[0].item is not None and packages[0].item.name == "Buds"
            assert packages[0].item.product_category_type == 0  # an integer in this example
            package = await c.package("ABCDEF012345670000010042")
            assert (
                package is not None
                and package.quantity == 1.0
                and package.lab_testing_state == "NotSubmitted"
            )
            assert [r.name for r in await c.adjust_reasons()] == ["Drying", "Entry Error"]
            [category] = await c.item_categories()
            assert (category.name, category.quantity_type) == ("Buds", "WeightBased")
            # transfers
            [transfer] = await c.incoming_transfers()
            assert (transfer.id, transfer.manifest_number, transfer.delivery_id, transfer.package_count) == (
                1,
                "0000000001",
                1,
                7,
            )
            [delivery] = await c.transfer_deliveries(1)
            assert (delivery.id, delivery.delivery_package_count) == (1, 7)
            lines = await c.delivery_packages(1)
            assert [(p.package_label, p.shipment_package_state, p.received_quantity) for p in lines] == [
                ("ABCDEF012345670000010026", "Accepted", 10.0),
                ("ABCDEF012345670000010027", "Rejected", None),
            ]
            # the patient: active, with its allotment (the first of its two registrations)
            patient = await c.patient_status("PTN-123-456")
            assert patient is not None and patient.active
            assert (patient.flower_ounces_available, patient.thc_ounces_available) == (10.0, 1.0)
            assert (patient.registration_number, patient.purchase_amount_days) == ("REG-123-456", 1.0)
            caregiver = await c.caregiver_status("CGN-123-456")
            assert caregiver is not None and caregiver.active
            assert caregiver.patients == ["PatientLicense_74d59", "PatientLicense_b993f"]
            # writes: the documented {"Ids": [...], "Warnings": null}, and no body for PUT and DELETE
            assert await c.post_receipts(DOCUMENTED["post_receipts"]["request"]) == [1]
            assert await c.adjust_packages(DOCUMENTED["post_adjust"]["request"]) == [1, 2]
            await c.put_receipts(DOCUMENTED["put_receipts"]["request"])
            await c.delete_receipt(601)


async def test_the_older_bare_array_of_receipts_reads_too() -> None:
    older = DOCUMENTED["receipt_by_external_older"]
    metrc = Metrc(overrides={(older["method"], older["path"]): (200, older["response"])})
    async with metrc.client() as c:
        assert [r.id for r in await c.receipts_by_external_number("ABC-123")] == [1, 2]


async def test_unknown_fields_are_ignored_and_a_missing_required_field_is_named() -> None:
    extra = response("receipt_by_id") | {"SomethingNew": {"Nested": [1, 2]}, "Another": None}
    without_id = {k: v for k, v in response("receipt_by_id").items() if k != "Id"}
    patients = response("patient_status")
    del patients[1]["Active"]
    metrc = Metrc(
        overrides={
            ("GET", "/sales/v2/receipts/1"): (200, extra),
            ("GET", "/sales/v2/receipts/2"): (200, without_id),
            ("GET", "/patients/v2/statuses/PTN-123-456"): (200, patients),
        }
    )
    async with metrc.client() as c:
        assert (await c.receipt(1)).id == 1  # type: ignore[union-attr]
        with pytest.raises(StateProtocolError) as missing:
            await c.receipt(2)
        assert missing.value.field == "Id" and missing.value.endpoint == "GET /sales/v2/receipts/2"
        assert "GET /sales/v2/receipts/2" in str(missing.value) and "'Id'" in str(missing.value)
        with pytest.raises(StateProtocolError) as inactive:
            await c.patient_status("PTN-123-456")
        assert inactive.value.field == "Active" and "[1]" in str(inactive.value)


async def test_the_error_shapes_metrc_answers() -> None:
    rows = DOCUMENTED["error_400_rows"]
    single = DOCUMENTED["error_400_object"]
    metrc = Metrc(
        overrides={
            ("POST", "/sales/v2/receipts"): (400, rows["response"]),
            ("PUT", "/sales/v2/receipts"): (400, single["response"]),
            ("GET", "/packages/v2/active"): (401, None),  # "not reliably returning a JSON body"
            ("GET", "/transfers/v2/incoming"): (
                403,
                {"Message": "The authenticated user does not have access to the requested resource."},
            ),
            ("POST", "/packages/v2/adjust"): (
                429,
                {"Message": "The limit of API calls allowed has been exceeded."},
            ),
        }
    )
    async with metrc.client() as c:
        with pytest.raises(StateRejected) as by_row:
            await c.post_receipts([{}])
        assert [(e.row, e.message) for e in by_row.value.row_errors] == [
            (0, "Tag ABCDEF012345670000012358 is not available.")
        ]
        with pytest.raises(StateRejected) as one:
            await c.put_receipts([{}])
        assert [(e.row, e.message) for e in one.value.row_errors] == [(0, "No data was submitted.")]
        with pytest.raises(StateAuthError):
            await c.packages_active()
        with pytest.raises(StateAuthError, match="does not have access"):
            await c.incoming_transfers()
        with pytest.raises(RateLimited) as limited:
            await c.adjust_packages([{}])
        assert limited.value.retry_after == 1.0  # no Retry-After is documented: our own default


# -- requests ----------------------------------------------------------------------------------------------


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_like(sent: dict[str, Any], documented: dict[str, Any], where: str) -> None:
    """Every key sent is a documented key, spelled as documented, with the documented type (a documented
    ``null`` admits a value: the example simply left it empty)."""
    unknown = set(sent) - set(documented)
    assert not unknown, f"{where}: keys Metrc does not document: {sorted(unknown)}"
    for key, value in sent.items():
        doc = documented[key]
        if doc is None or value is None:
            continue
        assert _json_kind(value) == _json_kind(doc), f"{where}.{key}: {value!r} where Metrc shows {doc!r}"


async def test_requests_match_the_documented_request_examples() -> None:
    metrc = Metrc()
    sale = StateSale(
        external_receipt_number="L-42",
        sold_at=datetime(2024, 7, 4, 2, 30, 15, tzinfo=UTC),
        store_time_zone="America/Los_Angeles",
        lines=(
            StateSaleLine(
                package_label="1A4A", unit_of_measure="Grams", quantity_mg=3_543, total_price_cents=3_499
            ),
            StateSaleLine(package_label="1A4B", unit_of_measure="Each", units=2, total_price_cents=2_400),
        ),
    )
    adjustment = StateAdjustment(
        package_label="1A4A",
        unit_of_measure="Grams",
        delta_mg=-1_500,
        resulting_mg=2_000,
        reason="Drying",
        adjusted_at=datetime(2024, 7, 4, 2, 30, tzinfo=UTC),
        store_time_zone="America/Los_Angeles",
    )
    async with metrc.client() as c:
        await c.post_receipts([metrc_receipt(sale)])
        await c.put_receipts([metrc_receipt_update(sale, 51)])
        await c.delete_receipt(601)
        await c.adjust_packages([metrc_adjustment(adjustment)])
        await c.unfinish_packages(["ABCDEF012345670000010041"])
        for call in (
            c.receipt(1),
            c.receipts_by_external_number("ABC-123"),
            c.receipts_active(),
            c.customer_types(),
            c.packages_active(),
            c.package("ABCDEF012345670000010042"),
            c.adjust_reasons(),
            c.incoming_transfers(),
            c.transfer_deliveries(1),
            c.delivery_packages(1),
            c.delivery_package_states(),
            c.patient_status("PTN-123-456"),
            c.caregiver_status("CGN-123-456"),
            c.units_of_measure(),
            c.facilities(),
            c.item_categories(),
        ):
            await call
    by_path = {(r.method, r.url.path): r for r in metrc.requests}
    post = json.loads(by_path[("POST", "/sales/v2/receipts")].content)
    documented_post = DOCUMENTED["post_receipts"]["request"][0]
    assert isinstance(post, list) and len(post) == 1  # the top level is an array, as documented
    assert_like(post[0], documented_post, "POST receipt")
    assert set(documented_post) - {"Transactions"} <= set(post[0])  # every documented receipt key is sent
    for i, tx in enumerate(post[0]["Transactions"]):
        assert_like(tx, documented_post["Transactions"][0], f"POST receipt.Transactions[{i}]")
        assert {"PackageLabel", "Quantity", "UnitOfMeasure", "TotalAmount"} <= set(tx)
    # SalesDateTime: the facility's local time, milliseconds, no offset ("2016-10-04T16:44:53.000")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}", post[0]["SalesDateTime"])
    assert post[0]["SalesDateTime"] == "2024-07-03T19:30:15.000"
    put = json.loads(by_path[("PUT", "/sales/v2/receipts")].content)
    documented_put = DOCUMENTED["put_receipts"]["request"][0]
    assert list(put[0])[0] == "Id" and isinstance(put[0]["Id"], int)  # "Id" first, as documented
    assert_like(put[0], documented_put, "PUT receipt")
    adjust = json.loads(by_path[("POST", "/packages/v2/adjust")].content)
    assert set(adjust[0]) == set(DOCUMENTED["post_adjust"]["request"][0])
    assert_like(adjust[0], DOCUMENTED["post_adjust"]["request"][1], "POST adjust")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", adjust[0]["AdjustmentDate"])  # date only, as documented
    assert adjust[0]["Quantity"] == -1.5  # signed, as documented ("-2.0" for Drying)
    unfinish = json.loads(by_path[("PUT", "/packages/v2/unfinish")].content)
    assert unfinish == [{"Label": "ABCDEF012345670000010041"}]
    assert_like(unfinish[0], DOCUMENTED["unfinish"]["request"][0], "PUT unfinish")
    assert by_path[("DELETE", "/sales/v2/receipts/601")].content == b""
    # query parameters: licenseNumber where Metrc takes it, never where it does not (M0); pages <= 20
    for request in metrc.requests:
        path, query = request.url.path, dict(request.url.params)
        takes_licence = not any(part in path for part in NO_LICENCE) or path.startswith("/packages/v2")
        assert ("licenseNumber" in query) == takes_licence, (request.method, path, query)
        if "pageSize" in query:
            assert int(query["pageSize"]) <= 20 and query["pageNumber"] == "1"
        # bare arrays and bare objects are not paged
        if path in ("/sales/v2/customertypes", "/unitsofmeasure/v2/active", "/facilities/v2") or (
            "/external/" in path or "/statuses/" in path
        ):
            assert "pageSize" not in query, path
        assert request.headers["authorization"].startswith("Basic ")


async def test_a_401_to_the_receipt_lookup_means_no_such_receipt_only_if_the_keys_work() -> None:
    """Documented: a receipt "not valid for the specified License Number" answers 401. The lookup before a
    resend must not read that as bad keys (the channel would stop) nor bad keys as "not there" (a resend
    would duplicate): it asks ``/facilities/v2``, which any valid user may read."""
    unknown = Metrc(overrides={("GET", "/sales/v2/receipts/external/NOPE"): (401, None)})
    async with unknown.client() as c:
        assert await c.receipts_by_external_number("NOPE") == []
    bad_keys = Metrc(
        overrides={
            ("GET", "/sales/v2/receipts/external/NOPE"): (401, None),
            ("GET", "/facilities/v2"): (401, None),
        }
    )
    async with bad_keys.client() as c:
        with pytest.raises(StateAuthError):
            await c.receipts_by_external_number("NOPE")
