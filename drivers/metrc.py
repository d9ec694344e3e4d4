"""Metrc v2 client: httpx on trio, HTTP Basic (vendor key : user key), ``licenseNumber`` where Metrc takes it.

It speaks what Metrc itself documents (``reference/state-api-documented-shapes.md`` Part M; the examples are
in ``tests/state/documented/metrc_v2.json``), not the community OpenAPI file: PascalCase, bare arrays and
bare objects where documented, the paged wrapper elsewhere, ``{"Ids": …}`` after a POST. Every answer is
read through ``drivers.state_http``'s one case-insensitive boundary, so the camelCase some states answer
reads the same; a missing required field is a ``StateProtocolError`` naming the endpoint and the field.

Everything it raises is in ``drivers.state_errors``. GETs pass through a limiter (50/s, 10 concurrent per
facility) and back off on 429; writes are not rate limited by Metrc and are never retried here: the outbox
decides, because only it knows whether a resend is safe (look the receipt up by its external number first).

Payloads are built by ``hub.domain.state_payloads``; this module only moves them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import trio

from drivers.state_errors import RateLimited, StateAuthError, StateProtocolError
from drivers.state_http import (
    DEFAULT_TIMEOUT,
    GetLimiter,
    Wire,
    convert,
    decode,
    endpoint_of,
    fold,
    raise_for_status,
    read_json,
    retry_after,
    send,
)

SYSTEM = "metrc"
PAGE_SIZE = 20  # Metrc v2: pageSize must not exceed 20
MAX_WINDOW = timedelta(hours=24)  # last-modified windows of at most 24 h
PATIENT_CACHE_SECONDS = 60.0  # Metrc caches patient status "for up to one minute"; so may we
GET_429_RETRIES = 6

T = TypeVar("T")


# Answer structs. Field names are matched through ``drivers.state_http.Wire`` (case-insensitive), so the
# documented PascalCase and the camelCase some states answer both read. Required fields are the ones the hub
# cannot do without; the rest default.


class MetrcItem(Wire):
    id: int = 0
    name: str | None = None
    product_category_name: str | None = None
    # documented as an integer in the package example (0) and as a string in /items/v2/categories
    product_category_type: int | str | None = None
    quantity_type: int | str | None = None
    unit_of_measure_name: str | None = None


class MetrcPackage(Wire):
    id: int
    label: str
    quantity: float
    unit_of_measure_name: str | None = None
    is_on_hold: bool = False
    is_finished: bool | None = None
    finished_date: str | None = None
    lab_testing_state: str | None = None
    received_from_manifest_number: str | None = None
    received_date_time: str | None = None
    last_modified: str | None = None
    item: MetrcItem | None = None


class MetrcReceiptLine(Wire):
    package_label: str | None = None
    quantity: float = 0.0
    unit_of_measure: str | None = None
    total_amount: float = 0.0


class MetrcReceipt(Wire):
    id: int
    receipt_number: str | None = None
    sales_date_time: str | None = None
    sales_customer_type: str | None = None
    patient_license_number: str | None = None
    caregiver_license_number: str | None = None
    identification_method: str | None = None
    patient_registration_location_id: int | None = None
    external_receipt_number: str | None = None
    total_packages: int = 0
    total_price: float = 0.0
    transactions: list[MetrcReceiptLine] | None = None
    is_final: bool = False
    archived_date: str | None = None
    recorded_date_time: str | None = None
    recorded_by_user_name: str | None = None
    last_modified: str | None = None


class MetrcTransfer(Wire):
    id: int
    manifest_number: str | None = None
    shipper_facility_license_number: str | None = None
    shipper_facility_name: str | None = None
    delivery_id: int | None = None
    package_count: int | None = None
    received_package_count: int | None = None
    estimated_arrival_date_time: str | None = None
    received_date_time: str | None = None
    last_modified: str | None = None
    is_voided: bool | None = None


class MetrcDelivery(Wire):
    id: int
    recipient_facility_license_number: str | None = None
    estimated_arrival_date_time: str | None = None
    received_date_time: str | None = None
    delivery_package_count: int = 0
    delivery_received_package_count: int = 0


class MetrcDeliveryPackage(Wire):
    package_label: str
    package_id: int | None = None
    item_name: str | None = None
    item_category_name: str | None = None
    shipped_quantity: float = 0.0
    shipped_unit_of_measure_name: str | None = None
    received_quantity: float | None = None
    received_unit_of_measure_name: str | None = None
    shipment_package_state: str | None = None


class PatientStatus(Wire):
    """One registration of ``GET /patients/v2/statuses/{n}`` (a bare array, one element per registration)."""

    patient_license_number: str
    active: bool
    identification_method: str | None = None
    registration_number: str | None = None
    flower_ounces_allowed: float = 0.0
    thc_ounces_allowed: float = 0.0
    concentrate_ounces_allowed: float = 0.0
    infused_ounces_allowed: float = 0.0
    flower_ounces_purchased: float = 0.0
    thc_ounces_purchased: float = 0.0
    concentrate_ounces_purchased: float = 0.0
    infused_ounces_purchased: float = 0.0
    flower_ounces_available: float = 0.0
    thc_ounces_available: float = 0.0
    concentrate_ounces_available: float = 0.0
    infused_ounces_available: float = 0.0
    purchase_amount_days: float = 0.0
    patient_license_expiration_date: str | None = None
    patient_registration_start_date: str | None = None


class CaregiverStatus(Wire):
    caregiver_license_number: str
    active: bool
    patients: list[str] | None = None


class UnitOfMeasure(Wire):
    name: str
    quantity_type: str | None = None
    abbreviation: str | None = None


class ItemCategory(Wire):
    name: str
    product_category_type: str | None = None
    quantity_type: str | None = None


class AdjustReason(Wire):
    name: str
    requires_note: bool | None = None


class FacilityLicense(Wire):
    number: str
    license_type: str | None = None


class Facility(Wire):
    license: FacilityLicense
    facility_id: int | None = None
    name: str | None = None
    display_name: str | None = None


class MetrcLabTest(Wire):
    """One row of GET /labtests/v2/results: one test type of one lab result (OpenAPI schema LabTest)."""

    package_id: int = 0
    lab_test_result_id: int = 0
    lab_facility_license_number: str | None = None
    lab_facility_name: str | None = None
    source_package_label: str | None = None
    test_performed_date: str | None = None
    overall_passed: bool | None = None
    result_released: bool | None = None
    test_type_name: str | None = None
    test_passed: bool | None = None
    test_result_level: float | None = None
    test_comment: str | None = None
    revoked_date: str | None = None


class WriteResult(Wire):
    """``{"Ids": [..], "Warnings": null}``: the documented answer to a POST."""

    ids: list[int] = []
    warnings: Any = None


def records(raw: Any) -> tuple[list[Any], int | None]:
    """The records of a list answer, whatever its documented shape, and its page count when it has one.

    A bare array (customer types, units, patient statuses), the paged wrapper (``Data``, ``TotalPages``…),
    or a bare object (``GET …/receipts/external/{n}`` in 2026; it was a bare array in older pages).
    """
    if isinstance(raw, list):
        return raw, None
    if isinstance(raw, dict):
        keys = {fold(k): k for k in raw if isinstance(k, str)}
        if "data" in keys and isinstance(raw[keys["data"]], list | type(None)):
            pages = raw.get(keys["totalpages"]) if "totalpages" in keys else None
            return list(raw[keys["data"]] or []), pages if isinstance(pages, int) else None
        return [raw], None
    return [], None


def utc_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end] cut into consecutive windows of at most 24 h (Metrc refuses longer ones)."""
    out = []
    cursor = start
    while cursor < end:
        nxt = min(cursor + MAX_WINDOW, end)
        out.append((cursor, nxt))
        cursor = nxt
    return out


class MetrcClient:
    """One facility (licence), one user key. Use ``async with MetrcClient(...) as metrc``."""

    def __init__(
        self,
        base_url: str,
        vendor_key: str,
        user_key: str,
        license_number: str,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        limiter: GetLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.license_number = license_number
        self._vendor_key = vendor_key
        self._auth = httpx.BasicAuth(vendor_key, user_key)
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        self.limiter = limiter or GetLimiter(clock=clock)
        self._clock = clock
        self._patients: dict[str, tuple[float, PatientStatus | None]] = {}

    async def __aenter__(self) -> MetrcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _params(self, extra: dict[str, Any] | None = None, *, license: bool = True) -> dict[str, Any]:
        params: dict[str, Any] = {"licenseNumber": self.license_number} if license else {}
        params.update({k: v for k, v in (extra or {}).items() if v is not None})
        return params

    # -- transport ---------------------------------------------------------------------------------------

    async def _get(
        self, path: str, params: dict[str, Any], *, user_key: str | None = None
    ) -> httpx.Response | None:
        """GET through the limiter; backs off on 429 and tries again. None on 404."""
        delay = 0.25
        for attempt in range(GET_429_RETRIES + 1):
            async with self.limiter.slot():
                response = await send(
                    self._http, "GET", path, system=SYSTEM, params=params, auth=self._auth_for(user_key)
                )
            if response.status_code == 404:
                return None
            if response.status_code == 429 and attempt < GET_429_RETRIES:
                wait = max(delay, retry_after(response))
                await trio.sleep(wait)
                delay = min(delay * 2, 8.0)
                continue
            raise_for_status(response, system=SYSTEM, is_write=False)
            return response
        raise RateLimited("GET rate limited", 1.0, system=SYSTEM)  # pragma: no cover - loop returns or raises

    def _auth_for(self, user_key: str | None) -> httpx.BasicAuth:
        # A per-employee user key where configured, so Metrc records who did what.
        return self._auth if user_key is None else httpx.BasicAuth(self._vendor_key, user_key)

    async def _write(
        self, method: str, path: str, body: Any = None, *, user_key: str | None = None
    ) -> list[int]:
        """A write; returns the ``Ids`` Metrc documents for a POST (empty for PUT and DELETE: no body).

        The write has been applied once a 2xx came back, so an answer we cannot read is not an error."""
        response = await send(
            self._http,
            method,
            path,
            system=SYSTEM,
            params=self._params(),
            json=body,
            auth=self._auth_for(user_key),
        )
        raise_for_status(response, system=SYSTEM, is_write=True)
        if not response.content.strip():
            return []
        try:
            return list(decode(response, WriteResult, system=SYSTEM).ids)
        except StateProtocolError:
            return []

    async def _get_one(self, path: str, type_: type[T], params: dict[str, Any]) -> T | None:
        response = await self._get(path, params)
        return None if response is None else decode(response, type_, system=SYSTEM)

    async def _get_all(
        self, path: str, type_: type[T], params: dict[str, Any], *, paged: bool = True
    ) -> list[T]:
        """Every record of a list, page by page (pageSize ≤ 20) where the documentation shows the paged
        wrapper; bare arrays and bare objects read the same way (``records``)."""
        out: list[T] = []
        page = 1
        while True:
            query = dict(params)
            if paged:
                query.update(pageNumber=page, pageSize=PAGE_SIZE)
            response = await self._get(path, query)
            if response is None:
                return out
            rows, pages = records(read_json(response, system=SYSTEM))
            out.extend(convert(rows, list[type_], system=SYSTEM, endpoint=endpoint_of(response)))  # type: ignore[valid-type]
            if not paged or (pages or 1) <= page:
                return out
            page += 1

    # -- sales -------------------------------------------------------------------------------------------

    async def post_receipts(
        self, receipts: list[dict[str, Any]], *, user_key: str | None = None
    ) -> list[int]:
        """POST /sales/v2/receipts; the new receipts' Ids. A 400 raises StateRejected whose row_errors
        index ``receipts``."""
        return await self._write("POST", "/sales/v2/receipts", receipts, user_key=user_key)

    async def put_receipts(self, receipts: list[dict[str, Any]], *, user_key: str | None = None) -> None:
        await self._write("PUT", "/sales/v2/receipts", receipts, user_key=user_key)

    async def delete_receipt(self, receipt_id: int, *, user_key: str | None = None) -> None:
        """Void a receipt (DELETE /sales/v2/receipts/{id})."""
        await self._write("DELETE", f"/sales/v2/receipts/{receipt_id}", user_key=user_key)

    async def receipt(self, receipt_id: int) -> MetrcReceipt | None:
        try:
            return await self._get_one(f"/sales/v2/receipts/{receipt_id}", MetrcReceipt, self._params())
        except StateAuthError:
            await self._keys_work()
            return None

    async def receipts_by_external_number(self, external_number: str) -> list[MetrcReceipt]:
        """GET /sales/v2/receipts/external/{n}: the idempotency check before resending a sale."""
        path = f"/sales/v2/receipts/external/{_quote(external_number)}"
        try:
            # a bare receipt (2026 documentation), a bare array (older pages) or a wrapper: ``records`` reads all
            return await self._get_all(path, MetrcReceipt, self._params(), paged=False)
        except StateAuthError:
            # Documented: "if the Sales Receipt is not valid for the specified License Number, a 401
            # Unauthorized status will be returned" — which may be how Metrc says "no such receipt". Only
            # if the keys themselves work is it that; otherwise it is the keys.
            await self._keys_work()
            return []

    async def _keys_work(self) -> None:
        """Raises StateAuthError unless the keys are good (``/facilities/v2`` answers any valid user)."""
        await self._get("/facilities/v2", {})

    async def receipts_active(
        self, *, last_modified_start: datetime | None = None, last_modified_end: datetime | None = None
    ) -> list[MetrcReceipt]:
        return await self._receipts("/sales/v2/receipts/active", last_modified_start, last_modified_end)

    async def receipts_inactive(
        self, *, last_modified_start: datetime | None = None, last_modified_end: datetime | None = None
    ) -> list[MetrcReceipt]:
        return await self._receipts("/sales/v2/receipts/inactive", last_modified_start, last_modified_end)

    async def _receipts(self, path: str, start: datetime | None, end: datetime | None) -> list[MetrcReceipt]:
        if start is None:
            return await self._get_all(path, MetrcReceipt, self._params())
        out: list[MetrcReceipt] = []
        for lo, hi in windows(start, end or datetime.now(UTC)):
            out += await self._get_all(
                path,
                MetrcReceipt,
                self._params({"lastModifiedStart": utc_z(lo), "lastModifiedEnd": utc_z(hi)}),
            )
        return _dedupe(out)

    async def customer_types(self) -> list[str]:
        return await self._get_all("/sales/v2/customertypes", str, {}, paged=False)

    # -- packages ----------------------------------------------------------------------------------------

    async def packages_active(
        self, *, last_modified_start: datetime | None = None, last_modified_end: datetime | None = None
    ) -> list[MetrcPackage]:
        """Active packages, all pages; with a start, only those modified since, in windows of ≤ 24 h."""
        if last_modified_start is None:
            return await self._get_all("/packages/v2/active", MetrcPackage, self._params())
        out: list[MetrcPackage] = []
        for lo, hi in windows(last_modified_start, last_modified_end or datetime.now(UTC)):
            out += await self._get_all(
                "/packages/v2/active",
                MetrcPackage,
                self._params({"lastModifiedStart": utc_z(lo), "lastModifiedEnd": utc_z(hi)}),
            )
        return _dedupe(out)

    async def package(self, label: str) -> MetrcPackage | None:
        return await self._get_one(f"/packages/v2/{_quote(label)}", MetrcPackage, self._params())

    async def adjust_reasons(self) -> list[AdjustReason]:
        return await self._get_all("/packages/v2/adjust/reasons", AdjustReason, self._params())

    async def adjust_packages(
        self, adjustments: list[dict[str, Any]], *, user_key: str | None = None
    ) -> list[int]:
        """POST /packages/v2/adjust (relative quantities, with reasons)."""
        return await self._write("POST", "/packages/v2/adjust", adjustments, user_key=user_key)

    async def set_package_quantities(
        self, adjustments: list[dict[str, Any]], *, user_key: str | None = None
    ) -> None:
        """PUT /packages/v2/adjust: set the final quantity."""
        await self._write("PUT", "/packages/v2/adjust", adjustments, user_key=user_key)

    async def finish_packages(self, finishes: list[dict[str, Any]], *, user_key: str | None = None) -> None:
        await self._write("PUT", "/packages/v2/finish", finishes, user_key=user_key)

    async def unfinish_packages(self, labels: list[str], *, user_key: str | None = None) -> None:
        await self._write(
            "PUT", "/packages/v2/unfinish", [{"Label": label} for label in labels], user_key=user_key
        )

    # -- transfers ---------------------------------------------------------------------------------------

    async def incoming_transfers(
        self, *, last_modified_start: datetime | None = None, last_modified_end: datetime | None = None
    ) -> list[MetrcTransfer]:
        if last_modified_start is None:
            return await self._get_all("/transfers/v2/incoming", MetrcTransfer, self._params())
        out: list[MetrcTransfer] = []
        for lo, hi in windows(last_modified_start, last_modified_end or datetime.now(UTC)):
            out += await self._get_all(
                "/transfers/v2/incoming",
                MetrcTransfer,
                self._params({"lastModifiedStart": utc_z(lo), "lastModifiedEnd": utc_z(hi)}),
            )
        return _dedupe(out)

    async def transfer_deliveries(self, transfer_id: int) -> list[MetrcDelivery]:
        return await self._get_all(f"/transfers/v2/{transfer_id}/deliveries", MetrcDelivery, {})

    async def delivery_packages(self, delivery_id: int) -> list[MetrcDeliveryPackage]:
        return await self._get_all(
            f"/transfers/v2/deliveries/{delivery_id}/packages", MetrcDeliveryPackage, {}
        )

    async def delivery_package_states(self) -> list[str]:
        return await self._get_all("/transfers/v2/deliveries/packages/states", str, {}, paged=False)

    # -- patients ----------------------------------------------------------------------------------------

    async def patient_status(self, patient_license: str, *, fresh: bool = False) -> PatientStatus | None:
        """The state-held allotment of a medical patient; None if the state does not know the number.

        Cached up to a minute, as Metrc itself caches it; ``fresh`` skips the cache.
        """
        now = self._clock()
        cached = self._patients.get(patient_license)
        if cached is not None and not fresh and now - cached[0] < PATIENT_CACHE_SECONDS:
            return cached[1]
        statuses = await self._get_all(
            f"/patients/v2/statuses/{_quote(patient_license)}", PatientStatus, self._params(), paged=False
        )
        status = _current_registration(statuses)
        self._patients[patient_license] = (now, status)
        return status

    async def caregiver_status(self, caregiver_license: str) -> CaregiverStatus | None:
        return await self._get_one(
            f"/caregivers/v2/status/{_quote(caregiver_license)}", CaregiverStatus, self._params()
        )

    # -- lab results -------------------------------------------------------------------------------------

    async def lab_test_results(self, package_id: int) -> list[MetrcLabTest]:
        """GET /labtests/v2/results?packageId= (permission: View Packages): one row per test type."""
        return await self._get_all(
            "/labtests/v2/results", MetrcLabTest, self._params({"packageId": package_id})
        )

    # -- reference data ----------------------------------------------------------------------------------

    async def units_of_measure(self) -> list[UnitOfMeasure]:
        return await self._get_all("/unitsofmeasure/v2/active", UnitOfMeasure, {}, paged=False)

    async def item_categories(self) -> list[ItemCategory]:
        return await self._get_all("/items/v2/categories", ItemCategory, self._params())

    async def facilities(self) -> list[Facility]:
        return await self._get_all("/facilities/v2", Facility, {}, paged=False)


def _current_registration(statuses: list[PatientStatus]) -> PatientStatus | None:
    """One element per registration (documented: two). The first active one, in Metrc's order; the hub
    does not guess which registration has more left (a larger allotment is a person's call)."""
    active = [s for s in statuses if s.active]
    return (active or statuses)[0] if statuses else None


def _quote(segment: str) -> str:
    return quote(segment, safe="")


def _dedupe(records: list[T]) -> list[T]:
    """Consecutive windows share their boundary instant; keep the last copy of each id."""
    by_id: dict[Any, T] = {}
    for record in records:
        by_id[getattr(record, "id")] = record  # noqa: B009
    return list(by_id.values())


__all__ = [
    "AdjustReason",
    "CaregiverStatus",
    "Facility",
    "ItemCategory",
    "MetrcClient",
    "MetrcDelivery",
    "MetrcDeliveryPackage",
    "MetrcPackage",
    "MetrcReceipt",
    "MetrcTransfer",
    "PatientStatus",
    "UnitOfMeasure",
    "WriteResult",
    "records",
]
