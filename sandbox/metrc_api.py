"""The Metrc v2 endpoints the hub uses, emulated over the sandbox store.

Request bodies are bound case-insensitively (Metrc's own examples use PascalCase, the OpenAPI description
camelCase; ASP.NET accepts both). Responses follow what Metrc itself documents
(``reference/state-api-documented-shapes.md``, Part M), not the community OpenAPI file:

- PascalCase keys; a switch (``casing = "camel"``) answers camelCase instead, as some states have been seen to;
- bare arrays (customer types, units, package states, facilities, patient statuses), bare objects (a receipt by
  id or by external number, a package, a caregiver), the paged wrapper ``Data, Total, …`` where documented;
- ``{"Ids": [..], "Warnings": null}`` for a POST, no body for the PUTs and the DELETE;
- 400 as ``[{"row": i, "message": …}]`` (observed) or ``{"Message": …}``; 401/403/429 with the sentences
  independent clients reproduce (M6), and no ``Retry-After`` header (none is documented).

Validation mirrors what Metrc is known to refuse: unknown or finished packages, quantities that would go below
zero, a ``SalesDateTime`` carrying a time zone, missing ``licenseNumber``, windows over 24 hours, pages over 20.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.http import Reply, Request, Router, message, row_errors
from sandbox.store import SandboxStore, iso_z, utc_now

MAX_PAGE_SIZE = 20
MAX_WINDOW = timedelta(hours=24)
CUSTOMER_TYPES = ["Consumer", "Patient", "Caregiver", "ExternalPatient", "NonResidentConsumer"]
# M6: the sentences independent clients reproduce from Metrc's "Server Responses" section
UNAUTHORIZED = "Invalid or no authentication provided."
FORBIDDEN = "The authenticated user does not have access to the requested resource."
# name → (quantity type, grams per unit or 1 for Each)
UNITS: dict[str, tuple[str, str, float]] = {
    "Each": ("CountBased", "ea", 1.0),
    "Grams": ("WeightBased", "g", 1.0),
    "Milligrams": ("WeightBased", "mg", 0.001),
    "Kilograms": ("WeightBased", "kg", 1000.0),
    "Ounces": ("WeightBased", "oz", 28.349523125),
    "Pounds": ("WeightBased", "lb", 453.59237),
}
ADJUST_REASONS: list[tuple[str, bool]] = [
    ("Damage", True),
    ("Drying", False),
    ("Entry Error", True),
    ("Incorrect Quantity", True),
    ("Mandated State Destruction", True),
    ("Scale Variance", False),
    ("Theft", True),
    ("Waste (Unusable Product)", False),
]
ITEM_CATEGORIES: list[tuple[str, str, str]] = [
    ("Buds", "Buds", "WeightBased"),
    ("Shake/Trim", "ShakeTrim", "WeightBased"),
    ("Pre-Roll Flower", "PreRollFlower", "CountBased"),
    ("Concentrate", "Concentrate", "WeightBased"),
    ("Vape Cartridge", "VapeCartridge", "CountBased"),
    ("Edible", "Edible", "CountBased"),
    ("Tincture", "Tincture", "CountBased"),
    ("Topical", "Topical", "CountBased"),
]
FLOWER_CATEGORIES = {"Buds", "Shake/Trim"}
DELIVERY_PACKAGE_STATES = ["Shipped", "Rejected", "Accepted", "Returned"]
EPSILON = 1e-9
OFFSET_RE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


class _Refused(Exception):
    """Raised inside a transaction to roll it back and answer 400 with these row errors."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def field(obj: Any, name: str, default: Any = None) -> Any:
    """Case-insensitive property binding, as ASP.NET does it."""
    if not isinstance(obj, dict):
        return default
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return default


def convert(quantity: float, from_unit: str, to_unit: str) -> float | None:
    """Quantity in ``from_unit`` expressed in ``to_unit``; None when the units are not comparable."""
    if from_unit not in UNITS or to_unit not in UNITS:
        return None
    from_type, _, from_g = UNITS[from_unit]
    to_type, _, to_g = UNITS[to_unit]
    if from_type != to_type:
        return None
    return quantity * from_g / to_g


def cased(value: Any, casing: str) -> Any:
    """Every object key in PascalCase (documented) or camelCase (seen in some states), at every depth."""
    if isinstance(value, dict):
        return {_case(k, casing): cased(v, casing) for k, v in value.items()}
    if isinstance(value, list):
        return [cased(v, casing) for v in value]
    return value


def _case(key: str, casing: str) -> str:
    if not key:
        return key
    return (key[0].lower() if casing == "camel" else key[0].upper()) + key[1:]


class MetrcApi:
    def __init__(self, store: SandboxStore, casing: str = "pascal") -> None:
        self.store = store
        self.casing = casing  # "pascal" (documented) or "camel"

    def _cased(self, handler: Any) -> Any:
        def answer(req: Request) -> Reply:
            reply = handler(req)
            # 400 row arrays keep their observed lower-case ``row``/``message``
            if isinstance(reply.body, dict) or (reply.status < 300 and isinstance(reply.body, list)):
                reply.body = cased(reply.body, self.casing)
            return reply

        return answer

    def routes(self, router: Router) -> None:
        def r(method: str, pattern: str, handler: Any) -> None:
            router.add(method, pattern, self._cased(handler))

        r("GET", "/facilities/v2", self.facilities)
        r("GET", "/sales/v2/customertypes", self.customer_types)
        r("GET", "/unitsofmeasure/v2/active", self.units_active)
        r("GET", "/unitsofmeasure/v2/inactive", self.units_inactive)
        r("GET", "/items/v2/categories", self.item_categories)
        r("GET", "/sales/v2/receipts/active", lambda q: self.receipts_list(q, active=True))
        r("GET", "/sales/v2/receipts/inactive", lambda q: self.receipts_list(q, active=False))
        r("GET", "/sales/v2/receipts/external/{externalNumber}", self.receipt_by_external)
        r("GET", "/sales/v2/receipts/{id}", self.receipt_by_id)
        r("POST", "/sales/v2/receipts", self.receipts_post)
        r("PUT", "/sales/v2/receipts", self.receipts_put)
        r("DELETE", "/sales/v2/receipts/{id}", self.receipt_delete)
        r("GET", "/packages/v2/active", self.packages_active)
        r("GET", "/packages/v2/adjust/reasons", self.adjust_reasons)
        r("POST", "/packages/v2/adjust", lambda q: self.adjust(q, absolute=False))
        r("PUT", "/packages/v2/adjust", lambda q: self.adjust(q, absolute=True))
        r("PUT", "/packages/v2/finish", lambda q: self.finish(q, finish=True))
        r("PUT", "/packages/v2/unfinish", lambda q: self.finish(q, finish=False))
        r("GET", "/packages/v2/{label}", self.package_by_label)
        r("GET", "/transfers/v2/incoming", self.transfers_incoming)
        r("GET", "/transfers/v2/deliveries/packages/states", self.delivery_package_states)
        r("GET", "/transfers/v2/{id}/deliveries", self.transfer_deliveries)
        r("GET", "/transfers/v2/deliveries/{id}/packages", self.delivery_packages)
        r("GET", "/patients/v2/statuses/{patientLicenseNumber}", self.patient_status)
        r("GET", "/caregivers/v2/status/{caregiverLicenseNumber}", self.caregiver_status)

    # -- access ------------------------------------------------------------------------------------------

    def authenticate(self, req: Request) -> tuple[str, str] | Reply:
        """(user key, user name) for valid HTTP Basic vendor:user keys, else a 401 reply."""
        creds = req.basic_auth()
        if creds is None:
            return message(401, UNAUTHORIZED)
        vendor, user = creds
        if self.store.one("SELECT 1 FROM vendors WHERE vendor_key = ?", vendor) is None:
            return message(401, UNAUTHORIZED)
        row = self.store.one("SELECT name FROM users WHERE user_key = ?", user)
        if row is None:
            return message(401, UNAUTHORIZED)
        return user, row["name"]

    def facility(self, req: Request, user_key: str, *, required: bool = True) -> Any:
        """The facility row named by ``licenseNumber``; a Reply when absent or not the user's."""
        license = req.query.get("licensenumber", "").strip()
        if not license:
            if required:
                return message(400, "No License Number was specified. licenseNumber is required.")
            return None
        row = self.store.one(
            "SELECT f.* FROM facilities f JOIN user_facilities u ON u.license = f.license "
            "WHERE f.license = ? AND u.user_key = ?",
            license,
            user_key,
        )
        if row is None:
            # a facility the user has no access to (M6: 403); an unknown licence is the same to the caller
            return message(403, FORBIDDEN)
        return row

    def _open(self, req: Request, *, license_required: bool = True) -> tuple[str, str, Any] | Reply:
        who = self.authenticate(req)
        if isinstance(who, Reply):
            return who
        fac = self.facility(req, who[0], required=license_required)
        if isinstance(fac, Reply):
            return fac
        return who[0], who[1], fac

    # -- paging and windows ------------------------------------------------------------------------------

    @staticmethod
    def _page(req: Request, records: list[Any]) -> Reply:
        size_raw = req.query.get("pagesize")
        number_raw = req.query.get("pagenumber")
        try:
            size = int(size_raw) if size_raw else 0
            number = int(number_raw) if number_raw else 1
        except ValueError:
            return message(400, "pageNumber and pageSize must be integers.")
        if size > MAX_PAGE_SIZE:
            return message(400, f"The page size must not exceed {MAX_PAGE_SIZE}.")
        if size < 0 or number < 1:
            return message(400, "pageNumber must be at least 1 and pageSize must not be negative.")
        total = len(records)
        if size == 0:  # "Pagination is currently disabled by default."
            data, size, pages, number = records, total, 1, 1
        else:
            pages = max(1, math.ceil(total / size))
            data = records[(number - 1) * size : number * size]
        return Reply(
            200,
            {
                "Data": data,
                "Total": total,
                "TotalRecords": total,
                "PageSize": size,
                "RecordsOnPage": len(data),
                "Page": number,
                "CurrentPage": number,
                "TotalPages": pages,
            },
        )

    @staticmethod
    def _window(req: Request, start_name: str, end_name: str) -> tuple[str, str] | None | Reply:
        start_raw = req.query.get(start_name.lower())
        end_raw = req.query.get(end_name.lower())
        if not start_raw and not end_raw:
            return None
        if not start_raw or not end_raw:
            return message(400, f"Both {start_name} and {end_name} must be specified.")
        try:
            start = _parse_instant(start_raw)
            end = _parse_instant(end_raw)
        except ValueError:
            return message(400, f"{start_name} and {end_name} must be ISO 8601 timestamps.")
        if end < start:
            return message(400, f"{end_name} must not be before {start_name}.")
        if end - start > MAX_WINDOW:
            return message(
                400, f"The time window between {start_name} and {end_name} must not exceed 24 hours."
            )
        return iso_z(start), iso_z(end)

    # -- reference data ----------------------------------------------------------------------------------

    def facilities(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        user_key = opened[0]
        rows = self.store.all(
            "SELECT f.rowid, f.* FROM facilities f JOIN user_facilities u ON u.license = f.license "
            "WHERE u.user_key = ? ORDER BY f.license",
            user_key,
        )
        out = []
        for row in rows:
            retail = row["license_type"] == "Retail Store"
            flags = {
                "IsMedical": True,
                "IsRetail": retail,
                "IsHemp": False,
                "CanGrowPlants": not retail,
                "CanCreateOpeningBalancePackages": True,
                "CanSellToConsumers": retail,
                "CanSellToPatients": retail,
                "CanSellToExternalPatients": False,
                "CanSellToCaregivers": retail,
                "AdvancedSales": retail,
                "SalesRequirePatientNumber": retail,
            }
            out.append(
                {
                    "FacilityId": row["rowid"],
                    "HireDate": "2020-01-01",
                    "IsOwner": False,
                    "IsManager": True,
                    "IsFinancialContact": False,
                    "Email": None,
                    "Occupations": [],
                    "Name": row["name"],
                    "Alias": row["name"],
                    "DisplayName": row["name"],
                    "CredentialedDate": "2020-01-01",
                    "SupportActivationDate": None,
                    "SupportExpirationDate": None,
                    "FacilityType": flags,
                    "License": {
                        "Number": row["license"],
                        "EmployeeLicenseNumber": row["license"],
                        "StartDate": "2020-01-01",
                        "EndDate": "2030-12-31",
                        "LicenseType": row["license_type"],
                    },
                    "AllowTransferOfOnHoldPackages": None,
                    "AllowTransferOfOnRecallPackages": None,
                }
            )
        return Reply(200, out)

    def customer_types(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        return Reply(200, list(CUSTOMER_TYPES))  # a bare array (M1)

    def units_active(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        units = [{"QuantityType": t, "Name": n, "Abbreviation": a} for n, (t, a, _) in UNITS.items()]
        return Reply(200, units)  # a bare array (M5)

    def units_inactive(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        return Reply(200, [{"QuantityType": "WeightBased", "Name": "Tonns", "Abbreviation": "t"}])  # sic (M5)

    def item_categories(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        cats = [
            {
                "name": name,
                "productCategoryType": kind,
                "quantityType": qtype,
                "requiresStrain": name in FLOWER_CATEGORIES,
                "requiresUnitThcContent": qtype == "CountBased",
                "requiresUnitWeight": qtype == "CountBased",
                "requiresUnitVolume": name == "Tincture",
                "canContainSeeds": name in FLOWER_CATEGORIES,
                "canBeRemediated": True,
                "canBeDecontaminated": False,
                "canBeDestroyed": True,
                "requiresProductPhotos": 0,
                "labTestBatchNames": [],
            }
            for name, kind, qtype in ITEM_CATEGORIES
        ]
        return self._page(req, cats)

    def adjust_reasons(self, req: Request) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        reasons = [
            {
                "name": name,
                "requiresNote": note,
                "requiresWasteWeight": False,
                "requiresImmatureWasteWeight": False,
                "requiresMatureWasteWeight": False,
            }
            for name, note in ADJUST_REASONS
        ]
        return self._page(req, reasons)

    # -- receipts ----------------------------------------------------------------------------------------

    def _receipt_json(self, row: Any) -> dict[str, Any]:
        lines = self.store.all("SELECT * FROM receipt_lines WHERE receipt_id = ? ORDER BY line", row["id"])
        return {
            "id": row["id"],
            "receiptNumber": row["receipt_number"],
            "salesDateTime": row["sales_date_time"],
            "salesCustomerType": row["customer_type"],
            "patientLicenseNumber": row["patient_license"],
            "caregiverLicenseNumber": row["caregiver_license"],
            "identificationMethod": row["identification_method"],
            "patientRegistrationLocationId": None,
            "externalReceiptNumber": row["external_number"],
            "totalPackages": len({line["package_label"] for line in lines}),
            "totalPrice": round(sum(line["total_amount"] for line in lines), 2),
            "transactions": [
                {
                    "packageLabel": line["package_label"],
                    "quantity": line["quantity"],
                    "unitOfMeasure": line["unit"],
                    "totalAmount": line["total_amount"],
                }
                for line in lines
            ],
            "isFinal": bool(row["is_final"]),
            "archivedDate": row["archived_date"],
            "recordedDateTime": row["recorded_at"],
            "recordedByUserName": row["recorded_by"],
            "lastModified": row["last_modified"],
        }

    def receipts_list(self, req: Request, *, active: bool) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        fac = opened[2]
        modified = self._window(req, "lastModifiedStart", "lastModifiedEnd")
        sold = self._window(req, "salesDateStart", "salesDateEnd")
        if isinstance(modified, Reply):
            return modified
        if isinstance(sold, Reply):
            return sold
        if modified and sold:
            return message(400, "salesDateStart/End and lastModifiedStart/End are mutually exclusive.")
        sql = "SELECT * FROM receipts WHERE license = ? AND archived_date IS " + (
            "NULL" if active else "NOT NULL"
        )
        args: list[Any] = [fac["license"]]
        if modified:
            sql += " AND last_modified >= ? AND last_modified <= ?"
            args += list(modified)
        rows = self.store.all(sql + " ORDER BY id", *args)
        if sold:
            # Sales dates are facility-local; compare the window converted to the facility's zone.
            zone = ZoneInfo(fac["time_zone"])
            lo = _parse_instant(sold[0]).astimezone(zone).replace(tzinfo=None).isoformat()
            hi = _parse_instant(sold[1]).astimezone(zone).replace(tzinfo=None).isoformat()
            rows = [r for r in rows if lo <= r["sales_date_time"][:19] <= hi]
        return self._page(req, [self._receipt_json(r) for r in rows])

    def receipt_by_external(self, req: Request) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        number = req.params["externalNumber"]
        rows = self.store.all(
            "SELECT * FROM receipts WHERE license = ? AND external_number = ? ORDER BY id",
            opened[2]["license"],
            number,
        )
        if not rows:
            # documented: "if the Sales Receipt is not valid for the specified License Number, a 401
            # Unauthorized status will be returned"; an unknown number is answered the same way here (the
            # stricter reading: a client must not take this 401 for bad keys)
            return message(401, UNAUTHORIZED)
        # a bare receipt object (2026 documentation); should the number repeat, the live one
        live = [r for r in rows if r["archived_date"] is None]
        return Reply(200, self._receipt_json((live or rows)[0]))

    def receipt_by_id(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        if not req.params["id"].isdigit():
            return message(404, "Receipt not found.")
        row = self.store.one("SELECT * FROM receipts WHERE id = ?", int(req.params["id"]))
        if row is None:
            return message(404, "Receipt not found.")
        if opened[2] is not None and row["license"] != opened[2]["license"]:
            return message(401, UNAUTHORIZED)  # documented for a receipt of another licence
        return Reply(200, self._receipt_json(row))

    def receipts_post(self, req: Request) -> Reply:
        return self._receipts_write(req, update=False)

    def receipts_put(self, req: Request) -> Reply:
        return self._receipts_write(req, update=True)

    def _receipts_write(self, req: Request, *, update: bool) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        _, user_name, fac = opened
        try:
            body = req.json()
        except ValueError:
            return message(400, "The request body is not valid JSON.")
        if not isinstance(body, list) or not body:
            return message(400, "The request body must be a non-empty array of receipts.")
        ids: list[int] = []
        try:
            with self.store.transaction():
                errors: list[tuple[int, str]] = []
                for row_no, receipt in enumerate(body):
                    problems, receipt_id = self._apply_receipt(row_no, receipt, fac, user_name, update=update)
                    errors += problems
                    ids.append(receipt_id)
                if errors:
                    raise _Refused(errors)
        except _Refused as refused:
            return row_errors(refused.errors)
        # documented: POST answers {"Ids": [...], "Warnings": null}; PUT answers no body
        return Reply(200) if update else Reply(200, {"Ids": ids, "Warnings": None})

    def _apply_receipt(
        self, row_no: int, receipt: Any, fac: Any, user_name: str, *, update: bool
    ) -> tuple[list[tuple[int, str]], int]:
        """(row errors, receipt id)."""
        errors: list[tuple[int, str]] = []
        if not isinstance(receipt, dict):
            return [(row_no, "Each receipt must be an object.")], 0
        license = fac["license"]
        existing = None
        if update:
            receipt_id = field(receipt, "Id")
            if not isinstance(receipt_id, int):
                return [(row_no, "Id is required to update a receipt.")], 0
            existing = self.store.one(
                "SELECT * FROM receipts WHERE id = ? AND license = ?", receipt_id, license
            )
            if existing is None:
                return [(row_no, f"Receipt {receipt_id} does not exist in the current Facility.")], 0
            if existing["archived_date"] is not None:
                return [(row_no, f"Receipt {receipt_id} has been voided and cannot be updated.")], 0
            if existing["is_final"]:
                return [(row_no, f"Receipt {receipt_id} is finalized and cannot be updated.")], 0
            self._restore_lines(existing["id"], license)
        when_raw = field(receipt, "SalesDateTime")
        sales_dt = None
        if not isinstance(when_raw, str) or not when_raw.strip():
            errors.append((row_no, "SalesDateTime is required."))
        elif OFFSET_RE.search(when_raw.strip()):
            errors.append(
                (
                    row_no,
                    "SalesDateTime must be the date and time of the sale in the Facility's time zone, "
                    f"without a time zone; got {when_raw!r}.",
                )
            )
        else:
            try:
                sales_dt = datetime.fromisoformat(when_raw.strip())
            except ValueError:
                errors.append((row_no, f"SalesDateTime {when_raw!r} is not a valid date and time."))
        if sales_dt is not None:
            local_now = utc_now().astimezone(ZoneInfo(fac["time_zone"])).replace(tzinfo=None)
            if sales_dt > local_now + timedelta(hours=1):
                errors.append((row_no, f"SalesDateTime {when_raw} is in the future for this Facility."))
        customer_type = field(receipt, "SalesCustomerType")
        if customer_type not in CUSTOMER_TYPES:
            errors.append((row_no, f"SalesCustomerType {customer_type!r} is not valid."))
        patient = field(receipt, "PatientLicenseNumber")
        caregiver = field(receipt, "CaregiverLicenseNumber")
        if customer_type in ("Patient", "Caregiver"):
            if not patient:
                errors.append((row_no, "PatientLicenseNumber is required for patient sales."))
            else:
                prow = self.store.one("SELECT * FROM patients WHERE patient_license = ?", patient)
                if prow is None or not prow["active"]:
                    errors.append((row_no, f"Patient {patient} does not have an active registration."))
        if customer_type == "Caregiver":
            crow = self.store.one("SELECT * FROM caregivers WHERE caregiver_license = ?", caregiver or "")
            if crow is None or not crow["active"]:
                errors.append((row_no, f"Caregiver {caregiver} does not have an active registration."))
        transactions = field(receipt, "Transactions")
        if not isinstance(transactions, list) or not transactions:
            errors.append((row_no, "At least one transaction is required."))
            transactions = []
        external = field(receipt, "ExternalReceiptNumber")
        if external is not None and (not isinstance(external, str) or len(external) > 50):
            errors.append((row_no, "ExternalReceiptNumber must be a string of at most 50 characters."))
        lines: list[tuple[str, float, str, float]] = []
        for tx in transactions:
            label = field(tx, "PackageLabel")
            qty = field(tx, "Quantity")
            unit = field(tx, "UnitOfMeasure")
            amount = field(tx, "TotalAmount")
            pkg = self.store.one("SELECT * FROM packages WHERE label = ? AND license = ?", label, license)
            if pkg is None:
                errors.append((row_no, f"Package {label} does not exist in the current Facility."))
                continue
            if pkg["finished_date"] is not None:
                errors.append((row_no, f"Package {label} is finished and cannot be sold from."))
                continue
            if pkg["on_hold"]:
                errors.append((row_no, f"Package {label} is on hold."))
                continue
            if not isinstance(qty, int | float) or isinstance(qty, bool) or qty <= 0:
                errors.append((row_no, f"Quantity for package {label} must be greater than zero."))
                continue
            if not isinstance(amount, int | float) or isinstance(amount, bool) or amount < 0:
                errors.append((row_no, f"TotalAmount for package {label} must not be negative."))
                continue
            in_pkg_unit = convert(float(qty), str(unit), pkg["unit"])
            if in_pkg_unit is None:
                errors.append(
                    (
                        row_no,
                        f"UnitOfMeasure {unit!r} is not compatible with package {label} ({pkg['unit']}).",
                    )
                )
                continue
            remaining = pkg["quantity"] - in_pkg_unit
            if remaining < -EPSILON:
                errors.append(
                    (
                        row_no,
                        f"Package {label} has {pkg['quantity']:g} {pkg['unit']}; selling {qty:g} {unit} "
                        "would bring its quantity below zero.",
                    )
                )
                continue
            self._set_quantity(pkg["id"], max(0.0, remaining))
            if customer_type in ("Patient", "Caregiver") and patient:
                self._charge_patient(patient, pkg, in_pkg_unit)
            lines.append((label, float(qty), str(unit), round(float(amount), 2)))
        if errors or sales_dt is None:
            return errors, 0
        now = iso_z(utc_now())
        fields = (
            sales_dt.isoformat(timespec="milliseconds"),
            customer_type,
            patient,
            caregiver,
            field(receipt, "IdentificationMethod"),
            now,
        )
        if existing is not None:
            receipt_id = existing["id"]
            self.store.db.execute(
                "UPDATE receipts SET sales_date_time = ?, customer_type = ?, patient_license = ?, "
                "caregiver_license = ?, identification_method = ?, last_modified = ? WHERE id = ?",
                (*fields, receipt_id),
            )
            self.store.db.execute("DELETE FROM receipt_lines WHERE receipt_id = ?", (receipt_id,))
        else:
            receipt_id = self.store.bump("receipt_id", 1) + 10_000
            self.store.db.execute(
                "INSERT INTO receipts (id, license, receipt_number, external_number, sales_date_time, "
                "customer_type, patient_license, caregiver_license, identification_method, last_modified, "
                "recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (receipt_id, license, f"{receipt_id:010d}", external, *fields, now, user_name),
            )
        for i, (label, qty, unit, amount) in enumerate(lines):
            self.store.db.execute(
                "INSERT INTO receipt_lines VALUES (?, ?, ?, ?, ?, ?)",
                (receipt_id, i, label, qty, unit, amount),
            )
        return [], receipt_id

    def _set_quantity(self, package_id: int, quantity: float) -> None:
        self.store.db.execute(
            "UPDATE packages SET quantity = ?, last_modified = ? WHERE id = ?",
            (round(quantity, 6), iso_z(utc_now()), package_id),
        )

    def _charge_patient(self, patient: str, pkg: Any, qty_in_pkg_unit: float, sign: float = 1.0) -> None:
        """Metrc keeps the medical patient's rolling flower allotment; a sale draws it down."""
        item = self.store.one("SELECT category FROM items WHERE id = ?", pkg["item_id"])
        if item is None or item["category"] not in FLOWER_CATEGORIES:
            return
        grams = convert(qty_in_pkg_unit, pkg["unit"], "Grams")
        if grams is None:
            return
        self.store.db.execute(
            "UPDATE patients SET flower_oz = MAX(0, flower_oz - ?) WHERE patient_license = ?",
            (sign * grams / UNITS["Ounces"][2], patient),
        )

    def _restore_lines(self, receipt_id: int, license: str) -> None:
        receipt = self.store.one("SELECT * FROM receipts WHERE id = ?", receipt_id)
        for line in self.store.all("SELECT * FROM receipt_lines WHERE receipt_id = ?", receipt_id):
            pkg = self.store.one(
                "SELECT * FROM packages WHERE label = ? AND license = ?", line["package_label"], license
            )
            if pkg is None:
                continue
            back = convert(line["quantity"], line["unit"], pkg["unit"]) or 0.0
            self._set_quantity(pkg["id"], pkg["quantity"] + back)
            if receipt is not None and receipt["patient_license"]:
                self._charge_patient(receipt["patient_license"], pkg, back, sign=-1.0)

    def receipt_delete(self, req: Request) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        license = opened[2]["license"]
        if not req.params["id"].isdigit():
            return row_errors([(0, f"Receipt {req.params['id']} does not exist in the current Facility.")])
        receipt_id = int(req.params["id"])
        with self.store.transaction():
            row = self.store.one("SELECT * FROM receipts WHERE id = ? AND license = ?", receipt_id, license)
            if row is None:
                return row_errors([(0, f"Receipt {receipt_id} does not exist in the current Facility.")])
            if row["archived_date"] is not None:
                return row_errors([(0, f"Receipt {receipt_id} has already been voided.")])
            self._restore_lines(receipt_id, license)
            now = iso_z(utc_now())
            self.store.db.execute(
                "UPDATE receipts SET archived_date = ?, last_modified = ? WHERE id = ?",
                (now, now, receipt_id),
            )
        return Reply(200)

    # -- packages ----------------------------------------------------------------------------------------

    def _package_json(self, pkg: Any) -> dict[str, Any]:
        item = self.store.one("SELECT * FROM items WHERE id = ?", pkg["item_id"])
        unit = pkg["unit"]
        category = item["category"] if item else None
        quantity_type = UNITS.get(unit, ("WeightBased", "", 1.0))[0]
        # the documented package keys (M2) that the sandbox has values for; ``Item``'s enums are integers
        return {
            "id": pkg["id"],
            "label": pkg["label"],
            "externalId": None,
            "packageType": "Product",
            "sourceHarvestNames": None,
            "sourcePackageLabels": None,
            "locationId": None,
            "locationName": None,
            "sublocationId": None,
            "sublocationName": None,
            "locationTypeName": None,
            "quantity": pkg["quantity"],
            "originalPackageQuantity": pkg["quantity"],
            "unitOfMeasureName": unit,
            "unitOfMeasureAbbreviation": UNITS.get(unit, ("", unit, 1.0))[1],
            "patientLicenseNumber": None,
            "itemFromFacilityLicenseNumber": pkg["received_from_license"],
            "itemFromFacilityName": pkg["received_from_name"],
            "note": pkg["note"],
            "packagedDate": pkg["packaged_date"],
            "expirationDate": None,
            "sellByDate": None,
            "useByDate": None,
            "initialLabTestingState": pkg["lab_state"],
            "labTestingState": pkg["lab_state"],
            "labTestingStateDate": pkg["packaged_date"],
            "isProductionBatch": False,
            "productionBatchNumber": None,
            "isTradeSample": False,
            "isDonation": False,
            "isTestingSample": False,
            "productRequiresRemediation": False,
            "containsRemediatedProduct": False,
            "receivedDateTime": pkg["received_at"],
            "receivedFromManifestNumber": pkg["received_manifest"],
            "receivedFromFacilityLicenseNumber": pkg["received_from_license"],
            "receivedFromFacilityName": pkg["received_from_name"],
            "isOnHold": bool(pkg["on_hold"]),
            "archivedDate": None,
            "isFinished": pkg["finished_date"] is not None,
            "finishedDate": pkg["finished_date"],
            "isOnRetailerDelivery": False,
            "lastModified": pkg["last_modified"],
            "item": {
                "id": item["id"] if item else 0,
                "name": item["name"] if item else None,
                "productCategoryName": category,
                "productCategoryType": 0,
                "quantityType": 0 if quantity_type == "CountBased" else 1,
                "defaultLabTestingState": 0,
                "unitOfMeasureName": unit,
                "approvalStatus": 0,
            },
        }

    def packages_active(self, req: Request) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        window = self._window(req, "lastModifiedStart", "lastModifiedEnd")
        if isinstance(window, Reply):
            return window
        sql = "SELECT * FROM packages WHERE license = ? AND finished_date IS NULL"
        args: list[Any] = [opened[2]["license"]]
        if window:
            sql += " AND last_modified >= ? AND last_modified <= ?"
            args += list(window)
        rows = self.store.all(sql + " ORDER BY id", *args)
        return self._page(req, [self._package_json(r) for r in rows])

    def package_by_label(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        key = req.params["label"]
        # /packages/v2/{id} and /packages/v2/{label} share one path shape; route by form.
        if key.isdigit():
            pkg = self.store.one("SELECT * FROM packages WHERE id = ?", int(key))
        else:
            pkg = self.store.one("SELECT * FROM packages WHERE label = ?", key)
        if pkg is None:
            return message(404, f"Package {key} was not found.")
        if opened[2] is not None and pkg["license"] != opened[2]["license"]:
            return message(401, "The Package is not valid for the specified License Number.")
        return Reply(200, self._package_json(pkg))

    def adjust(self, req: Request, *, absolute: bool) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        _, user_name, fac = opened
        try:
            body = req.json()
        except ValueError:
            return message(400, "The request body is not valid JSON.")
        if not isinstance(body, list) or not body:
            return message(400, "The request body must be a non-empty array of adjustments.")
        reasons = dict(ADJUST_REASONS)
        ids: list[int] = []
        try:
            with self.store.transaction():
                errors: list[tuple[int, str]] = []
                for row_no, adj in enumerate(body):
                    label = field(adj, "Label")
                    qty = field(adj, "Quantity")
                    unit = field(adj, "UnitOfMeasure")
                    reason = field(adj, "AdjustmentReason")
                    when = field(adj, "AdjustmentDate")
                    note = field(adj, "ReasonNote")
                    pkg = self.store.one(
                        "SELECT * FROM packages WHERE label = ? AND license = ?", label, fac["license"]
                    )
                    if pkg is None:
                        errors.append((row_no, f"Package {label} does not exist in the current Facility."))
                        continue
                    if pkg["finished_date"] is not None:
                        errors.append((row_no, f"Package {label} is finished and cannot be adjusted."))
                        continue
                    if reason not in reasons:
                        errors.append((row_no, f"AdjustmentReason {reason!r} is not valid."))
                        continue
                    if reasons[reason] and not note:
                        errors.append((row_no, f"AdjustmentReason {reason!r} requires a ReasonNote."))
                        continue
                    if note is not None and len(str(note)) > 200:
                        errors.append((row_no, "ReasonNote must not exceed 200 characters."))
                        continue
                    if not isinstance(when, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", when):
                        errors.append((row_no, "AdjustmentDate is required (yyyy-mm-dd)."))
                        continue
                    if not isinstance(qty, int | float) or isinstance(qty, bool):
                        errors.append((row_no, "Quantity is required."))
                        continue
                    delta = convert(float(qty), str(unit), pkg["unit"])
                    if delta is None:
                        errors.append(
                            (row_no, f"UnitOfMeasure {unit!r} is not compatible with package {label}.")
                        )
                        continue
                    new_quantity = delta if absolute else pkg["quantity"] + delta
                    if new_quantity < -EPSILON:
                        errors.append((row_no, f"Package {label} quantity cannot be adjusted below zero."))
                        continue
                    self._set_quantity(pkg["id"], max(0.0, new_quantity))
                    cur = self.store.db.execute(
                        "INSERT INTO adjustments (license, label, quantity, unit, reason, adjustment_date, note, "
                        "mode, recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            fac["license"],
                            label,
                            float(qty),
                            unit,
                            reason,
                            when,
                            note,
                            "set" if absolute else "relative",
                            iso_z(utc_now()),
                            user_name,
                        ),
                    )
                    ids.append(int(cur.lastrowid or 0))
                if errors:
                    raise _Refused(errors)
        except _Refused as refused:
            return row_errors(refused.errors)
        # documented: POST answers {"Ids": [...], "Warnings": null}; PUT answers no body
        return Reply(200) if absolute else Reply(200, {"Ids": ids, "Warnings": None})

    def finish(self, req: Request, *, finish: bool) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        fac = opened[2]
        try:
            body = req.json()
        except ValueError:
            return message(400, "The request body is not valid JSON.")
        if not isinstance(body, list) or not body:
            return message(400, "The request body must be a non-empty array.")
        try:
            with self.store.transaction():
                errors: list[tuple[int, str]] = []
                for row_no, item in enumerate(body):
                    label = field(item, "Label")
                    pkg = self.store.one(
                        "SELECT * FROM packages WHERE label = ? AND license = ?", label, fac["license"]
                    )
                    if pkg is None:
                        errors.append((row_no, f"Package {label} does not exist in the current Facility."))
                        continue
                    now = iso_z(utc_now())
                    if finish:
                        when = field(item, "ActualDate")
                        if not isinstance(when, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", when):
                            errors.append((row_no, "ActualDate is required (yyyy-mm-dd)."))
                        elif pkg["finished_date"] is not None:
                            errors.append((row_no, f"Package {label} is already finished."))
                        elif pkg["quantity"] > EPSILON:
                            errors.append(
                                (
                                    row_no,
                                    f"Package {label} has {pkg['quantity']:g} left; only empty packages finish.",
                                )
                            )
                        else:
                            self.store.db.execute(
                                "UPDATE packages SET finished_date = ?, last_modified = ? WHERE id = ?",
                                (when, now, pkg["id"]),
                            )
                    elif pkg["finished_date"] is None:
                        errors.append((row_no, f"Package {label} is not finished."))
                    else:
                        self.store.db.execute(
                            "UPDATE packages SET finished_date = NULL, last_modified = ? WHERE id = ?",
                            (now, pkg["id"]),
                        )
                if errors:
                    raise _Refused(errors)
        except _Refused as refused:
            return row_errors(refused.errors)
        return Reply(200)

    # -- transfers ---------------------------------------------------------------------------------------

    def transfers_incoming(self, req: Request) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        window = self._window(req, "lastModifiedStart", "lastModifiedEnd")
        if isinstance(window, Reply):
            return window
        sql = (
            "SELECT t.*, d.id AS delivery_id, d.recipient_license, d.recipient_name, d.estimated_arrival, "
            "d.received_at FROM transfers t JOIN deliveries d ON d.transfer_id = t.id "
            "WHERE d.recipient_license = ?"
        )
        args: list[Any] = [opened[2]["license"]]
        if window:
            sql += " AND t.last_modified >= ? AND t.last_modified <= ?"
            args += list(window)
        out = []
        for row in self.store.all(sql + " ORDER BY t.id", *args):
            counts = self.store.one(
                "SELECT COUNT(*) AS n, SUM(state = 'Accepted') AS received FROM delivery_packages "
                "WHERE delivery_id = ?",
                row["delivery_id"],
            )
            n, received = int(counts["n"] or 0), int(counts["received"] or 0)
            out.append(
                {
                    "id": row["id"],
                    "manifestNumber": row["manifest_number"],
                    "invoiceNumber": None,
                    "shipmentLicenseType": 0,
                    "shipperFacilityLicenseNumber": row["shipper_license"],
                    "shipperFacilityName": row["shipper_name"],
                    "name": None,
                    "transporterFacilityLicenseNumber": row["shipper_license"],
                    "transporterFacilityName": row["shipper_name"],
                    "driverName": "Demo Driver",
                    "driverOccupationalLicenseNumber": "",
                    "driverVehicleLicenseNumber": "",
                    "vehicleMake": "Ford",
                    "vehicleModel": "Transit",
                    "vehicleLicensePlateNumber": "DEMO-001",
                    "deliveryCount": 1,
                    "receivedDeliveryCount": 1 if row["received_at"] else 0,
                    "packageCount": n,
                    "receivedPackageCount": received,
                    "containsPlantPackage": False,
                    "containsProductPackage": True,
                    "containsTradeSample": False,
                    "containsDonation": False,
                    "containsTestingSample": False,
                    "containsProductRequiresRemediation": False,
                    "containsRemediatedProductPackage": False,
                    "createdDateTime": row["created_at"],
                    "createdByUserName": "demo.shipper",
                    "lastModified": row["last_modified"],
                    "deliveryId": row["delivery_id"],
                    "recipientFacilityLicenseNumber": row["recipient_license"],
                    "recipientFacilityName": row["recipient_name"],
                    "shipmentTypeName": "Wholesale Manifest",
                    "shipmentTransactionType": "Wholesale",
                    "estimatedDepartureDateTime": row["created_at"],
                    "actualDepartureDateTime": row["created_at"],
                    "estimatedArrivalDateTime": row["estimated_arrival"],
                    "actualArrivalDateTime": row["received_at"],
                    "deliveryPackageCount": n,
                    "deliveryReceivedPackageCount": received,
                    "receivedDateTime": row["received_at"],
                    "isVoided": bool(row["voided"]),
                    "originatingTemplateId": None,
                }
            )
        return self._page(req, out)

    def transfer_deliveries(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        if not req.params["id"].isdigit():
            return message(404, "Transfer not found.")
        out = []
        for row in self.store.all("SELECT * FROM deliveries WHERE transfer_id = ?", int(req.params["id"])):
            counts = self.store.one(
                "SELECT COUNT(*) AS n, SUM(state = 'Accepted') AS received FROM delivery_packages "
                "WHERE delivery_id = ?",
                row["id"],
            )
            out.append(
                {
                    "id": row["id"],
                    "manifestNumber": None,
                    "deliveryNumber": 0,
                    "recipientFacilityLicenseNumber": row["recipient_license"],
                    "recipientFacilityName": row["recipient_name"],
                    "shipmentTypeName": "Wholesale Manifest",
                    "shipmentTransactionType": "Wholesale",
                    "invoiceNumber": None,
                    "estimatedDepartureDateTime": None,
                    "actualDepartureDateTime": None,
                    "estimatedArrivalDateTime": row["estimated_arrival"],
                    "actualArrivalDateTime": row["received_at"],
                    "grossWeight": None,
                    "grossUnitOfWeightId": None,
                    "grossUnitOfWeightName": None,
                    "plannedRoute": "Demo route",
                    "deliveryPackageCount": int(counts["n"] or 0),
                    "deliveryReceivedPackageCount": int(counts["received"] or 0),
                    "receivedDateTime": row["received_at"],
                    "rejectedPackagesReturned": False,
                    "PDFDocumentFileSystemId": None,
                }
            )
        if not out and self.store.one("SELECT 1 FROM transfers WHERE id = ?", int(req.params["id"])) is None:
            return message(404, "Transfer not found.")
        return self._page(req, out)

    def delivery_packages(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        if not req.params["id"].isdigit():
            return message(404, "Delivery not found.")
        delivery_id = int(req.params["id"])
        if self.store.one("SELECT 1 FROM deliveries WHERE id = ?", delivery_id) is None:
            return message(404, "Delivery not found.")
        out = []
        for row in self.store.all(
            "SELECT * FROM delivery_packages WHERE delivery_id = ? ORDER BY id", delivery_id
        ):
            out.append(
                {
                    "packageId": row["id"],
                    "packageLabel": row["label"],
                    "packageType": "Product",
                    "sourceHarvestNames": None,
                    "sourcePackageLabels": None,
                    "itemId": 0,
                    "itemName": row["item_name"],
                    "itemCategoryName": row["category"],
                    "labTestingState": "TestPassed",
                    "isTradeSample": False,
                    "isTradeSamplePersistent": False,
                    "isDonation": False,
                    "sourcePackageIsDonation": False,
                    "sourcePackageIsTradeSample": False,
                    "isTestingSample": False,
                    "productRequiresRemediation": False,
                    "containsRemediatedProduct": False,
                    "shipmentPackageState": row["state"],
                    "shippedQuantity": row["shipped_quantity"],
                    "shippedUnitOfMeasureName": row["shipped_unit"],
                    "grossUnitOfWeightName": None,
                    "receivedQuantity": row["received_quantity"],
                    "receivedUnitOfMeasureName": row["shipped_unit"]
                    if row["received_quantity"] is not None
                    else None,
                    "externalId": None,
                    "isFinishedGood": False,
                }
            )
        return self._page(req, out)

    def delivery_package_states(self, req: Request) -> Reply:
        opened = self._open(req, license_required=False)
        if isinstance(opened, Reply):
            return opened
        return Reply(200, list(DELIVERY_PACKAGE_STATES))  # a bare array (M3)

    # -- patients ----------------------------------------------------------------------------------------

    def patient_status(self, req: Request) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        number = req.params["patientLicenseNumber"]
        row = self.store.one("SELECT * FROM patients WHERE patient_license = ?", number)
        if row is None:
            return message(404, f"Patient {number} was not found.")
        # a bare array, one element per registration, with the 19 documented keys (M4)
        flower, thc = round(row["flower_oz"], 4), round(row["thc_oz"], 4)
        return Reply(
            200,
            [
                {
                    "PatientLicenseNumber": row["patient_license"],
                    "IdentificationMethod": None,
                    "RegistrationNumber": f"REG-{row['patient_license']}",
                    "Active": bool(row["active"]),
                    "FlowerOuncesAllowed": flower,
                    "ThcOuncesAllowed": thc,
                    "ConcentrateOuncesAllowed": 0.0,
                    "InfusedOuncesAllowed": 0.0,
                    "FlowerOuncesPurchased": 0.0,
                    "ThcOuncesPurchased": 0.0,
                    "ConcentrateOuncesPurchased": 0.0,
                    "InfusedOuncesPurchased": 0.0,
                    "FlowerOuncesAvailable": flower,
                    "ThcOuncesAvailable": thc,
                    "ConcentrateOuncesAvailable": 0.0,
                    "InfusedOuncesAvailable": 0.0,
                    "PurchaseAmountDays": row["purchase_days"],
                    "PatientLicenseExpirationDate": "2030-01-01",
                    "PatientRegistrationStartDate": "2024-01-01",
                }
            ],
        )

    def caregiver_status(self, req: Request) -> Reply:
        opened = self._open(req)
        if isinstance(opened, Reply):
            return opened
        number = req.params["caregiverLicenseNumber"]
        row = self.store.one("SELECT * FROM caregivers WHERE caregiver_license = ?", number)
        if row is None:
            return message(404, f"Caregiver {number} was not found.")
        patients = [r["patient_license"] for r in self.store.all("SELECT patient_license FROM patients")]
        return Reply(
            200,
            {
                "CaregiverLicenseNumber": row["caregiver_license"],
                "Active": bool(row["active"]),
                "Patients": patients[:2],
            },
        )


def _parse_instant(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
