"""What stays of the check against the community Metrc v2 OpenAPI description: every operation the hub calls
exists there, and the hub's request payloads validate against its request schemas (a small validator for the
OpenAPI 3.0 subset the description uses). Its *response* shapes contradict Metrc's own documentation
(state-api-documented-shapes.md M7), so answers are checked against the documented examples instead
(``test_documented_contract.py``).

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

import pytest
import yaml

from hub.domain.state_payloads import (
    StateAdjustment,
    StateSale,
    StateSaleLine,
    metrc_adjustment,
    metrc_receipt,
)
from sandbox import demo

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


def test_requests_conform_where_the_description_agrees_with_the_documentation(spec):
    """The hub's request bodies against the community request schemas, names matched case-insensitively.

    The sandbox's *answers* are no longer checked against this file: it contradicts Metrc's own examples
    (bare arrays, bare receipt objects, ``{"Ids": …}``, PascalCase; state-api-documented-shapes.md M7). They
    are checked against the documented examples in ``test_documented_contract.py``.
    """
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
    loose = Validator(spec, case_insensitive=True)
    receipt_body = [metrc_receipt(sale)]
    assert loose.errors(receipt_body, request_schema(spec, "post", "/sales/v2/receipts")) == []
    assert (
        loose.errors([metrc_adjustment(adjustment)], request_schema(spec, "post", "/packages/v2/adjust"))
        == []
    )
    update = [{"Id": 7, **receipt_body[0]}]
    assert loose.errors(update, request_schema(spec, "put", "/sales/v2/receipts")) == []
