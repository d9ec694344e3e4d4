"""The sandbox's Metrc answers conform to the Metrc v2 OpenAPI description, for every endpoint the hub uses.

Real responses from the running sandbox are validated against the response schemas in
``reference/metrc-openapi-v2.yaml`` with a small validator for the OpenAPI 3.0 schema subset the description
uses ($ref, oneOf, nullable, type, properties, additionalProperties, required, pattern, enum, minLength).
The hub's request payloads are validated against the request schemas the same way.

Known weaknesses of the description (reference/state-systems.md), handled explicitly:
- request property names are camelCase there, PascalCase in Metrc's own documentation: requests are matched
  case-insensitively;
- the ``salesDateTime`` pattern demands a trailing ``Z`` while the operation's text demands local time without
  a zone: that one pattern is not enforced.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml

from hub.domain.state_payloads import (
    StateAdjustment,
    StateSale,
    StateSaleLine,
    metrc_adjustment,
    metrc_receipt,
)
from sandbox import demo
from sandbox.testing import SandboxAdmin, running_sandbox

# the Metrc v2 OpenAPI description (MIT, Code Cooper; licence beside it), kept with the tests so they always run
SPEC_PATH = Path(__file__).parent / "data" / "metrc-openapi-v2.yaml"
# (schema name, property) whose pattern contradicts the operation's own description.
PATTERN_EXEMPT = {
    ("SaleReceipt", "salesDateTime"),
    ("PostSaleReceiptsRequest", "salesDateTime"),
    ("PutSaleReceiptsRequest", "salesDateTime"),
}

# Every Metrc operation the hub's client calls.
USED_OPERATIONS = [
    ("get", "/facilities/v2"),
    ("get", "/sales/v2/customertypes"),
    ("get", "/unitsofmeasure/v2/active"),
    ("get", "/items/v2/categories"),
    ("get", "/sales/v2/receipts/active"),
    ("get", "/sales/v2/receipts/inactive"),
    ("get", "/sales/v2/receipts/external/{externalNumber}"),
    ("get", "/sales/v2/receipts/{id}"),
    ("post", "/sales/v2/receipts"),
    ("put", "/sales/v2/receipts"),
    ("delete", "/sales/v2/receipts/{id}"),
    ("get", "/packages/v2/active"),
    ("get", "/packages/v2/{label}"),
    ("get", "/packages/v2/adjust/reasons"),
    ("post", "/packages/v2/adjust"),
    ("put", "/packages/v2/adjust"),
    ("put", "/packages/v2/finish"),
    ("put", "/packages/v2/unfinish"),
    ("get", "/transfers/v2/incoming"),
    ("get", "/transfers/v2/{id}/deliveries"),
    ("get", "/transfers/v2/deliveries/{id}/packages"),
    ("get", "/transfers/v2/deliveries/packages/states"),
    ("get", "/patients/v2/statuses/{patientLicenseNumber}"),
    ("get", "/caregivers/v2/status/{caregiverLicenseNumber}"),
]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open() as fh:
        return yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader


class Validator:
    def __init__(self, spec: dict[str, Any], *, case_insensitive: bool = False) -> None:
        self.schemas = spec["components"]["schemas"]
        self.case_insensitive = case_insensitive

    def errors(self, value: Any, schema: dict[str, Any], where: str = "$", name: str = "") -> list[str]:
        if "$ref" in schema:
            ref = schema["$ref"].rsplit("/", 1)[-1]
            return self.errors(value, self.schemas[ref], where, ref)
        if value is None:
            return [] if schema.get("nullable") else [f"{where}: null where the schema is not nullable"]
        if "oneOf" in schema:
            results = [self.errors(value, option, where, name) for option in schema["oneOf"]]
            if sum(1 for r in results if not r) == 1:
                return []
            return [f"{where}: matches {sum(1 for r in results if not r)} oneOf options"] + [
                e for r in results for e in r
            ]
        out: list[str] = []
        kind = schema.get("type")
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
        }
        if kind is not None and not checks[kind](value):
            return [f"{where}: {type(value).__name__} where the schema says {kind}"]
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{where}: {value!r} not in {schema['enum']}")
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                out.append(f"{where}: shorter than {schema['minLength']}")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                out.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                out += self.errors(item, schema["items"], f"{where}[{i}]")
        if isinstance(value, dict):
            props = schema.get("properties", {})
            lookup = {k.lower(): k for k in props} if self.case_insensitive else {k: k for k in props}
            present = set()
            for key, item in value.items():
                declared = lookup.get(key.lower() if self.case_insensitive else key)
                if declared is None:
                    if schema.get("additionalProperties") is False:
                        out.append(f"{where}: property {key!r} is not allowed")
                    continue
                present.add(declared)
                prop_schema = dict(props[declared])
                if (name, declared) in PATTERN_EXEMPT:
                    prop_schema.pop("pattern", None)
                out += self.errors(item, prop_schema, f"{where}.{key}")
            for required in schema.get("required", []):
                if required not in present:
                    out.append(f"{where}: required property {required!r} missing")
        return out


def response_schema(spec: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any] | None:
    response = spec["paths"][path][method]["responses"][str(status)]
    content = response.get("content")
    return None if content is None else content["application/json"]["schema"]


def request_schema(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def test_every_used_operation_exists_and_its_required_parameters_are_known(spec):
    for method, path in USED_OPERATIONS:
        assert path in spec["paths"], path
        assert method in spec["paths"][path], (method, path)
        required = {p["name"] for p in spec["paths"][path][method].get("parameters", []) if p.get("required")}
        assert required <= {
            "licenseNumber",
            "id",
            "label",
            "externalNumber",
            "patientLicenseNumber",
            "caregiverLicenseNumber",
        }, (path, required)


def test_the_validator_catches_what_it_should(spec):
    v = Validator(spec)
    package = {"$ref": "#/components/schemas/Package"}
    assert v.errors({"label": "x"}, package) == ["$: required property 'id' missing"]
    assert v.errors({"id": "1"}, package)[0].startswith("$.id: str where")
    assert v.errors({"id": 1, "lastModified": "2024-01-01T00:00:00"}, package)  # pattern wants Z
    assert v.errors({"message": "m", "extra": 1}, {"$ref": "#/components/schemas/ErrorResponse"})
    assert (
        v.errors(
            {"id": 1, "salesDateTime": "2024-01-01T10:00:00.000"},
            {"$ref": "#/components/schemas/SaleReceipt"},
        )
        == []
    )


def local_now() -> str:
    from zoneinfo import ZoneInfo

    now = datetime.now(UTC).astimezone(ZoneInfo(demo.METRC_TIME_ZONE)) - timedelta(minutes=1)
    return now.replace(tzinfo=None).isoformat(timespec="milliseconds")


async def test_sandbox_answers_conform(spec, tmp_path):
    v = Validator(spec)
    lic = {"licenseNumber": demo.METRC_LICENSE}
    label = demo.METRC_PACKAGES[0][0]
    sale = StateSale(
        external_receipt_number="CONF-1",
        sold_at=datetime.now(UTC) - timedelta(minutes=1),
        store_time_zone=demo.METRC_TIME_ZONE,
        lines=(StateSaleLine(package_label=label, unit_of_measure="Each", units=1, total_price_cents=3500),),
    )
    adjustment = StateAdjustment(
        package_label=label,
        unit_of_measure="Each",
        delta_units=-1,
        resulting_units=38,
        reason="Scale Variance",
        adjusted_at=datetime.now(UTC),
        store_time_zone=demo.METRC_TIME_ZONE,
    )
    receipt_body = [metrc_receipt(sale)]
    adjust_body = [metrc_adjustment(adjustment)]
    loose = Validator(spec, case_insensitive=True)
    assert loose.errors(receipt_body, request_schema(spec, "post", "/sales/v2/receipts"), name="") == []
    assert loose.errors(adjust_body, request_schema(spec, "post", "/packages/v2/adjust")) == []

    checked: set[tuple[str, str]] = set()

    async def check(client, method, template, url, *, params=None, body=None, status=200):
        response = await client.request(method.upper(), url, params=params, json=body)
        assert response.status_code == status, (url, response.text)
        schema = response_schema(spec, method, template, status)
        if schema is not None:
            problems = v.errors(response.json(), schema)
            assert problems == [], (template, problems[:10])
        else:
            assert response.content == b"", template
        checked.add((method, template))
        return response.json() if response.content else None

    with trio.fail_after(30):
        async with running_sandbox(tmp_path) as sandbox, SandboxAdmin(sandbox.url) as admin:
            auth = (demo.METRC_VENDOR_KEY, demo.METRC_USER_KEY)
            async with httpx.AsyncClient(base_url=sandbox.url, auth=auth) as c:
                await check(c, "get", "/facilities/v2", "/facilities/v2")
                await check(c, "get", "/sales/v2/customertypes", "/sales/v2/customertypes")
                await check(c, "get", "/unitsofmeasure/v2/active", "/unitsofmeasure/v2/active")
                await check(c, "get", "/items/v2/categories", "/items/v2/categories", params=lic)
                await check(
                    c, "post", "/sales/v2/receipts", "/sales/v2/receipts", params=lic, body=receipt_body
                )
                found = await check(
                    c,
                    "get",
                    "/sales/v2/receipts/external/{externalNumber}",
                    "/sales/v2/receipts/external/CONF-1",
                    params=lic,
                )
                receipt_id = found["data"][0]["id"]
                await check(
                    c, "get", "/sales/v2/receipts/{id}", f"/sales/v2/receipts/{receipt_id}", params=lic
                )
                update = [{"Id": receipt_id, **receipt_body[0]}]
                await check(c, "put", "/sales/v2/receipts", "/sales/v2/receipts", params=lic, body=update)
                await check(
                    c,
                    "get",
                    "/sales/v2/receipts/active",
                    "/sales/v2/receipts/active",
                    params=lic | {"pageSize": 20},
                )
                await check(
                    c, "delete", "/sales/v2/receipts/{id}", f"/sales/v2/receipts/{receipt_id}", params=lic
                )
                await check(
                    c, "get", "/sales/v2/receipts/inactive", "/sales/v2/receipts/inactive", params=lic
                )
                window = {
                    "lastModifiedStart": (datetime.now(UTC) - timedelta(hours=1)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                    "lastModifiedEnd": (datetime.now(UTC) + timedelta(minutes=1)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                }
                page = await check(
                    c,
                    "get",
                    "/packages/v2/active",
                    "/packages/v2/active",
                    params=lic | window | {"pageSize": 5},
                )
                assert page["recordsOnPage"] == 5 and page["totalPages"] == 2
                await check(c, "get", "/packages/v2/{label}", f"/packages/v2/{label}", params=lic)
                await check(
                    c,
                    "get",
                    "/packages/v2/{label}",
                    "/packages/v2/1A4FF0300000387000099999",
                    params=lic,
                    status=404,
                )
                await check(
                    c, "get", "/packages/v2/adjust/reasons", "/packages/v2/adjust/reasons", params=lic
                )
                await check(
                    c, "post", "/packages/v2/adjust", "/packages/v2/adjust", params=lic, body=adjust_body
                )
                today = datetime.now(UTC).date().isoformat()
                set_zero = [
                    {
                        "Label": label,
                        "Quantity": 0,
                        "UnitOfMeasure": "Each",
                        "AdjustmentReason": "Drying",
                        "AdjustmentDate": today,
                    }
                ]
                await check(c, "put", "/packages/v2/adjust", "/packages/v2/adjust", params=lic, body=set_zero)
                await check(
                    c,
                    "put",
                    "/packages/v2/finish",
                    "/packages/v2/finish",
                    params=lic,
                    body=[{"Label": label, "ActualDate": today}],
                )
                await check(
                    c,
                    "put",
                    "/packages/v2/unfinish",
                    "/packages/v2/unfinish",
                    params=lic,
                    body=[{"Label": label}],
                )
                transfers = await check(
                    c, "get", "/transfers/v2/incoming", "/transfers/v2/incoming", params=lic
                )
                transfer_id = transfers["data"][0]["id"]
                deliveries = await check(
                    c, "get", "/transfers/v2/{id}/deliveries", f"/transfers/v2/{transfer_id}/deliveries"
                )
                delivery_id = deliveries["data"][0]["id"]
                await admin.receive_delivery(
                    delivery_id,
                    [{"label": demo.INCOMING_PACKAGES[0][0], "received_quantity": 50, "status": "accepted"}],
                )
                await check(
                    c,
                    "get",
                    "/transfers/v2/deliveries/{id}/packages",
                    f"/transfers/v2/deliveries/{delivery_id}/packages",
                )
                await check(
                    c,
                    "get",
                    "/transfers/v2/deliveries/packages/states",
                    "/transfers/v2/deliveries/packages/states",
                )
                await check(
                    c, "get", "/transfers/v2/incoming", "/transfers/v2/incoming", params=lic
                )  # after receiving: the received fields conform too
                await check(
                    c,
                    "get",
                    "/patients/v2/statuses/{patientLicenseNumber}",
                    f"/patients/v2/statuses/{demo.PATIENTS[0][0]}",
                    params=lic,
                )
                await check(
                    c,
                    "get",
                    "/caregivers/v2/status/{caregiverLicenseNumber}",
                    f"/caregivers/v2/status/{demo.CAREGIVERS[0][0]}",
                    params=lic,
                )
                await check(
                    c,
                    "get",
                    "/caregivers/v2/status/{caregiverLicenseNumber}",
                    "/caregivers/v2/status/NOBODY",
                    params=lic,
                    status=404,
                )
                await admin.set_faults(get_rate_per_second=1)
                await c.get("/sales/v2/customertypes")
                await check(c, "get", "/sales/v2/customertypes", "/sales/v2/customertypes", status=429)
                await admin.clear_faults()
    assert checked == set(USED_OPERATIONS)
