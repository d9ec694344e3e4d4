"""The sandbox's contract is Metrc's documentation: for every endpoint the hub uses, the sandbox's answer has
the shape of the documented example (``tests/state/documented/metrc_v2.json``, each with its source): the
same bare array, bare object, paged wrapper or ``{"Ids", "Warnings"}``; no key the documentation lacks; the
documented JSON type for every key it shares; and, for the small objects, exactly the documented keys. The
camelCase switch answers the same contract with its keys' first letters lowered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from hub.domain.state_payloads import (
    StateAdjustment,
    StateSale,
    StateSaleLine,
    metrc_adjustment,
    metrc_receipt,
)
from sandbox import demo
from sandbox.testing import SandboxAdmin, running_sandbox

DOCUMENTED: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "state" / "documented" / "metrc_v2.json").read_text()
)
WRAPPER_KEYS = {
    "Data",
    "Total",
    "TotalRecords",
    "PageSize",
    "RecordsOnPage",
    "Page",
    "CurrentPage",
    "TotalPages",
}
# small objects: the sandbox answers exactly the documented keys
EXACT = {
    "receipt_by_id",
    "receipt_by_external",
    "receipts_active",
    "patient_status",
    "caregiver_status",
    "units_active",
    "adjust_reasons",
    "post_receipts",
    "post_adjust",
    "facilities",
}


def pascal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v) for v in value]
    return value


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def conforms(got: Any, doc: Any, where: str, *, exact: bool) -> list[str]:
    """What in ``got`` departs from the documented ``doc``."""
    if doc is None or got is None:
        return []
    if kind(got) != kind(doc):
        return [f"{where}: {kind(got)} where Metrc documents {kind(doc)} ({doc!r})"]
    problems: list[str] = []
    if isinstance(doc, dict):
        invented = set(got) - set(doc)
        if invented:
            problems.append(f"{where}: keys Metrc does not document: {sorted(invented)}")
        if exact and set(doc) - set(got):
            problems.append(f"{where}: documented keys missing: {sorted(set(doc) - set(got))}")
        for key in set(got) & set(doc):
            problems += conforms(got[key], doc[key], f"{where}.{key}", exact=exact and key != "FacilityType")
    elif isinstance(doc, list) and doc and got:
        for i, item in enumerate(got):
            problems += conforms(item, doc[0], f"{where}[{i}]", exact=exact)
    return problems


def check(name: str, answer: httpx.Response, casing: str) -> Any:
    fx = DOCUMENTED[name]
    assert answer.status_code == 200, (name, answer.text)
    if fx["response"] is None:
        assert answer.content == b"", f"{name}: Metrc documents no body"
        return None
    got = answer.json()
    if casing == "camel":
        top = got if isinstance(got, dict) else (got[0] if got and isinstance(got[0], dict) else {})
        assert all(k[:1].islower() for k in top), f"{name}: camelCase keys"
        got = pascal(got)
    doc = fx["response"]
    if isinstance(doc, dict) and "Data" in doc:
        assert set(got) == WRAPPER_KEYS, f"{name}: the paged wrapper's keys"
    problems = conforms(got, doc, name, exact=name in EXACT)
    assert problems == [], problems[:8]
    return got


def local_now() -> str:
    from zoneinfo import ZoneInfo

    now = datetime.now(UTC).astimezone(ZoneInfo(demo.METRC_TIME_ZONE)) - timedelta(minutes=1)
    return now.replace(tzinfo=None).isoformat(timespec="milliseconds")


@pytest.mark.parametrize("casing", ["pascal", "camel"])
async def test_the_sandbox_answers_as_metrc_documents(tmp_path: Path, casing: str) -> None:
    lic = {"licenseNumber": demo.METRC_LICENSE}
    label = demo.METRC_PACKAGES[0][0]
    sale = StateSale(
        external_receipt_number="CONTRACT-1",
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
    with trio.fail_after(30):
        async with running_sandbox(tmp_path, casing=casing) as sandbox, SandboxAdmin(sandbox.url) as admin:
            auth = (demo.METRC_VENDOR_KEY, demo.METRC_USER_KEY)
            async with httpx.AsyncClient(base_url=sandbox.url, auth=auth) as c:

                async def call(name: str, method: str, url: str, **kw: Any) -> Any:
                    return check(name, await c.request(method, url, **kw), casing)

                await call("facilities", "GET", "/facilities/v2")
                await call("customer_types", "GET", "/sales/v2/customertypes")
                await call("units_active", "GET", "/unitsofmeasure/v2/active")
                await call("item_categories", "GET", "/items/v2/categories", params=lic)
                ids = await call(
                    "post_receipts", "POST", "/sales/v2/receipts", params=lic, json=[metrc_receipt(sale)]
                )
                found = await call(
                    "receipt_by_external", "GET", "/sales/v2/receipts/external/CONTRACT-1", params=lic
                )
                assert found["Id"] == ids["Ids"][0] and ids["Warnings"] is None
                await call("receipt_by_id", "GET", f"/sales/v2/receipts/{found['Id']}", params=lic)
                update = [{"Id": found["Id"], **metrc_receipt(sale)}]
                await call("put_receipts", "PUT", "/sales/v2/receipts", params=lic, json=update)
                await call(
                    "receipts_active", "GET", "/sales/v2/receipts/active", params=lic | {"pageSize": 20}
                )
                await call("delete_receipt", "DELETE", f"/sales/v2/receipts/{found['Id']}", params=lic)
                await call("receipts_active", "GET", "/sales/v2/receipts/inactive", params=lic)
                page = await call(
                    "packages_active", "GET", "/packages/v2/active", params=lic | {"pageSize": 5}
                )
                assert (page["RecordsOnPage"], page["TotalPages"]) == (5, 2)
                await call("package_by_label", "GET", f"/packages/v2/{label}", params=lic)
                await call("adjust_reasons", "GET", "/packages/v2/adjust/reasons", params=lic)
                adjusted = await call(
                    "post_adjust",
                    "POST",
                    "/packages/v2/adjust",
                    params=lic,
                    json=[metrc_adjustment(adjustment)],
                )
                assert len(adjusted["Ids"]) == 1
                today = datetime.now(UTC).date().isoformat()
                zero = [
                    {
                        **DOCUMENTED["post_adjust"]["request"][0],
                        "Label": label,
                        "Quantity": 0,
                        "UnitOfMeasure": "Each",
                        "AdjustmentDate": today,
                    }
                ]
                await call("finish", "PUT", "/packages/v2/adjust", params=lic, json=zero)  # no body either
                await call(
                    "finish",
                    "PUT",
                    "/packages/v2/finish",
                    params=lic,
                    json=[{"Label": label, "ActualDate": today}],
                )
                await call("unfinish", "PUT", "/packages/v2/unfinish", params=lic, json=[{"Label": label}])
                transfers = await call("incoming", "GET", "/transfers/v2/incoming", params=lic)
                deliveries = await call(
                    "deliveries", "GET", f"/transfers/v2/{transfers['Data'][0]['Id']}/deliveries"
                )
                delivery_id = deliveries["Data"][0]["Id"]
                await admin.receive_delivery(
                    delivery_id,
                    [{"label": demo.INCOMING_PACKAGES[0][0], "received_quantity": 50, "status": "accepted"}],
                )
                await call("delivery_packages", "GET", f"/transfers/v2/deliveries/{delivery_id}/packages")
                await call("delivery_package_states", "GET", "/transfers/v2/deliveries/packages/states")
                await call("incoming", "GET", "/transfers/v2/incoming", params=lic)  # received fields too
                await call(
                    "patient_status", "GET", f"/patients/v2/statuses/{demo.PATIENTS[0][0]}", params=lic
                )
                await call(
                    "caregiver_status", "GET", f"/caregivers/v2/status/{demo.CAREGIVERS[0][0]}", params=lic
                )
                # errors as Metrc sends them (M6): 400 rows in lower case, a single {"Message"} otherwise
                refused = await c.post(
                    "/sales/v2/receipts", params=lic, json=[{**metrc_receipt(sale), "Transactions": []}]
                )
                assert refused.status_code == 400 and set(refused.json()[0]) == {"row", "message"}
                missing = await c.get("/packages/v2/active")
                assert missing.status_code == 400
                assert set(pascal(missing.json())) == {"Message"}


def test_the_conformance_checker_catches_what_it_should() -> None:
    doc = DOCUMENTED["receipt_by_id"]["response"]
    assert conforms(doc, doc, "r", exact=True) == []
    assert conforms({**doc, "Invented": 1}, doc, "r", exact=False)
    assert conforms({**doc, "Id": "1"}, doc, "r", exact=False)
    assert conforms({k: v for k, v in doc.items() if k != "Id"}, doc, "r", exact=True)
    assert conforms(pascal({"id": 1}), {"Id": 1}, "r", exact=True) == []
