"""State track-and-trace payloads: the hub's sale, void, return and adjustment, in Metrc's and BioTrack's words.

Pure functions, no I/O. The hub counts money in integer cents and weight in integer milligrams, and keeps
every instant in UTC; this module is the one boundary where that becomes the state's units (grams, ounces,
each; dollars) and the state's clock (Metrc ``SalesDateTime`` is the facility's local time *without* an offset,
per the v2 description of POST /sales/v2/receipts; BioTrack REST wants RFC 3339 with an offset; the 2014
JSON-RPC a unix time).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from hub.domain.receipt import Receipt

CustomerType = Literal["Consumer", "Patient", "Caregiver", "ExternalPatient"]

# Metrc unit name → milligrams in one unit; "Each" is counted, not weighed.
MG_PER_UNIT: dict[str, int | float] = {
    "Milligrams": 1,
    "Grams": 1_000,
    "Kilograms": 1_000_000,
    "Ounces": 28_349.523125,
    "Pounds": 453_592.37,
}
COUNT_UNITS = frozenset({"Each"})

# Metrc adjustment reason → BioTrack 2014 adjustment type (1 audit, 2 theft, 3 seizure, 4 correction,
# 5 moisture loss, 6 depletion).
BIOTRACK_ADJUST_TYPE: dict[str, int] = {
    "Inventory Audit": 1,
    "Incorrect Quantity": 1,
    "Theft": 2,
    "Seizure": 3,
    "Seizure by Law Enforcement": 3,
    "Correction": 4,
    "Entry Error": 4,
    "Scale Variance": 4,
    "Drying": 5,
    "Moisture Loss": 5,
    "Depletion": 6,
    "Damage": 6,
    "Waste (Unusable Product)": 6,
    "Mandated State Destruction": 6,
}
METRC_NOTE_LIMIT = 200  # Metrc refuses adjustment notes over 200 characters


class PayloadError(ValueError):
    """The hub asked for a payload that cannot be right (a naive time, a weight on a counted package…)."""


class StateSaleLine(msgspec.Struct, frozen=True, kw_only=True):
    package_label: str  # Metrc tag or BioTrack barcode
    unit_of_measure: str  # the package's unit at the state: "Each", "Grams", "Ounces", …
    quantity_mg: int = 0  # weighed or by-weight lines
    units: int = 0  # counted lines ("Each")
    total_price_cents: int  # after discounts, before taxes
    excise_tax_cents: int = 0
    other_tax_cents: int = 0


class StateSale(msgspec.Struct, frozen=True, kw_only=True):
    external_receipt_number: str  # the hub's sale id; Metrc's idempotency key
    sold_at: datetime  # UTC, timezone-aware
    store_time_zone: str  # IANA name of the facility's zone, e.g. "America/Denver"
    lines: tuple[StateSaleLine, ...]
    customer_type: CustomerType = "Consumer"
    patient_license: str | None = None
    caregiver_license: str | None = None
    identification_method: str | None = None
    terminal_id: str = ""


def sale_key(licence: str, receipt_number: int) -> str:
    """The state's idempotency key of a sale (Metrc's ``ExternalReceiptNumber``): ``<licence>-<receipt>``.
    A void's (``void-<key>``) and a return's (``return-<key>-<n>``) keys derive from it."""
    return f"{licence}-{receipt_number}"


def state_sale(
    receipt: Receipt,
    *,
    licence: str,
    time_zone: str,
    terminal_id: str,
    patient_license: str | None = None,
    identification_method: str | None = None,
) -> StateSale:
    """A receipt as the state system records the sale: per line the package, the amount, the pre-tax price
    and the excise apart from the other taxes."""
    lines = []
    for ln in receipt.lines:
        weighed = ln.sold_by == "weight"
        excise = sum(t.amount_cents for t in ln.taxes if t.code == "excise")
        lines.append(
            StateSaleLine(
                package_label=ln.package_tag,
                unit_of_measure="Grams" if weighed else "Each",
                quantity_mg=ln.weight_mg if weighed else 0,
                units=0 if weighed else ln.quantity,
                total_price_cents=ln.pretax_cents,
                excise_tax_cents=excise,
                other_tax_cents=sum(t.amount_cents for t in ln.taxes) - excise,
            )
        )
    return StateSale(
        external_receipt_number=sale_key(licence, receipt.receipt_number),
        sold_at=receipt.sold_at,
        store_time_zone=time_zone,
        lines=tuple(lines),
        customer_type="Consumer" if receipt.customer_type == "adult" else "Patient",
        patient_license=patient_license,
        identification_method=identification_method,
        terminal_id=terminal_id,
    )


class StateVoid(msgspec.Struct, frozen=True, kw_only=True):
    external_receipt_number: str  # of the sale being voided
    voided_at: datetime
    package_labels: tuple[str, ...] = ()


class StateReturnLine(msgspec.Struct, frozen=True, kw_only=True):
    package_label: str
    quantity_mg: int = 0
    units: int = 0
    refund_cents: int


class StateReturn(msgspec.Struct, frozen=True, kw_only=True):
    """A customer return of part of a sale; Metrc has no return call, so the receipt is rewritten (PUT).

    A PUT replaces the receipt as a whole, so it must carry the sale minus *every* return of it so far:
    ``earlier`` holds what the sale's earlier returns took back (written when this return is committed)."""

    sale: StateSale  # as originally reported
    returned: tuple[StateReturnLine, ...]
    returned_at: datetime
    earlier: tuple[StateReturnLine, ...] = ()  # new fields go last, with defaults


class StateAdjustment(msgspec.Struct, frozen=True, kw_only=True):
    package_label: str
    unit_of_measure: str
    delta_mg: int = 0  # signed change, weighed packages
    delta_units: int = 0  # signed change, counted packages
    resulting_mg: int = 0  # the package's quantity after the change (BioTrack takes the new quantity)
    resulting_units: int = 0
    reason: str  # Metrc reason name, e.g. "Scale Variance"
    note: str = ""
    adjusted_at: datetime
    store_time_zone: str


# -- conversions ------------------------------------------------------------------------------------------


def _require_aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PayloadError(f"{what} must be timezone-aware UTC, got naive {moment.isoformat()}")
    return moment


def metrc_local_time(moment: datetime, time_zone: str) -> str:
    """The facility's wall-clock time with no offset, as Metrc's SalesDateTime wants it."""
    local = _require_aware(moment, "sale time").astimezone(ZoneInfo(time_zone))
    return local.replace(tzinfo=None).isoformat(timespec="milliseconds")


def local_date(moment: datetime, time_zone: str) -> date:
    return _require_aware(moment, "time").astimezone(ZoneInfo(time_zone)).date()


def state_quantity(unit_of_measure: str, quantity_mg: int, units: int) -> float:
    """A hub quantity (integer mg, or integer units) in the state's unit for that package."""
    if unit_of_measure in COUNT_UNITS:
        if quantity_mg:
            raise PayloadError(f"a counted ({unit_of_measure}) package takes units, not {quantity_mg} mg")
        return float(units)
    per_unit = MG_PER_UNIT.get(unit_of_measure)
    if per_unit is None:
        raise PayloadError(f"unknown unit of measure {unit_of_measure!r}")
    if units:
        raise PayloadError(f"a weighed ({unit_of_measure}) package takes milligrams, not {units} units")
    if per_unit == 1_000:
        return quantity_mg / 1000  # exact to the milligram in three decimals
    return round(quantity_mg / per_unit, 6)


def dollars(cents: int) -> float:
    return round(cents / 100, 2)


def _check_line_quantity(label: str, quantity_mg: int, units: int) -> None:
    if quantity_mg < 0 or units < 0 or (quantity_mg == 0 and units == 0):
        raise PayloadError(f"line for {label} must sell a positive quantity")


# -- Metrc ------------------------------------------------------------------------------------------------


def metrc_transaction(line: StateSaleLine) -> dict[str, Any]:
    _check_line_quantity(line.package_label, line.quantity_mg, line.units)
    if line.total_price_cents < 0:
        raise PayloadError(f"line for {line.package_label} has a negative price")
    return {
        "PackageLabel": line.package_label,
        "Quantity": state_quantity(line.unit_of_measure, line.quantity_mg, line.units),
        "UnitOfMeasure": line.unit_of_measure,
        "TotalAmount": dollars(line.total_price_cents),
    }


def metrc_receipt(sale: StateSale) -> dict[str, Any]:
    """One element of the POST /sales/v2/receipts array (Metrc's documented PascalCase)."""
    if not sale.lines:
        raise PayloadError("a sale must have at least one line")
    if sale.customer_type in ("Patient", "Caregiver") and not sale.patient_license:
        raise PayloadError("a patient or caregiver sale needs the patient's licence number")
    if sale.customer_type == "Caregiver" and not sale.caregiver_license:
        raise PayloadError("a caregiver sale needs the caregiver's licence number")
    return {
        "SalesDateTime": metrc_local_time(sale.sold_at, sale.store_time_zone),
        "ExternalReceiptNumber": sale.external_receipt_number,
        "SalesCustomerType": sale.customer_type,
        "PatientLicenseNumber": sale.patient_license,
        "CaregiverLicenseNumber": sale.caregiver_license,
        "IdentificationMethod": sale.identification_method,
        "PatientRegistrationLocationId": None,  # documented key; the hub registers no out-of-state patients
        "Transactions": [metrc_transaction(line) for line in sale.lines],
    }


def metrc_receipt_update(sale: StateSale, receipt_id: int) -> dict[str, Any]:
    """One element of PUT /sales/v2/receipts."""
    return {"Id": receipt_id, **metrc_receipt(sale)}


def sale_after_return(ret: StateReturn, *, include_this: bool = True) -> StateSale | None:
    """The sale as it stands after this return and every earlier one; None when nothing is left (void the
    receipt instead). ``include_this=False``: as it stood just before this return."""
    returned: dict[str, tuple[int, int, int]] = {}
    for r in ret.earlier + (ret.returned if include_this else ()):
        mg, units, cents = returned.get(r.package_label, (0, 0, 0))
        returned[r.package_label] = (mg + r.quantity_mg, units + r.units, cents + r.refund_cents)
    kept: list[StateSaleLine] = []
    for line in ret.sale.lines:
        mg, units, cents = returned.pop(line.package_label, (0, 0, 0))
        left_mg, left_units, left_cents = (
            line.quantity_mg - mg,
            line.units - units,
            line.total_price_cents - cents,
        )
        if left_mg < 0 or left_units < 0 or left_cents < 0:
            raise PayloadError(f"return of {line.package_label} exceeds what was sold")
        if left_mg or left_units:
            kept.append(
                msgspec.structs.replace(
                    line, quantity_mg=left_mg, units=left_units, total_price_cents=left_cents
                )
            )
    if returned:
        raise PayloadError(f"returned packages not on the sale: {sorted(returned)}")
    return msgspec.structs.replace(ret.sale, lines=tuple(kept)) if kept else None


def metrc_adjustment(adj: StateAdjustment) -> dict[str, Any]:
    """One element of POST /packages/v2/adjust (a relative change with a reason)."""
    if adj.delta_mg == 0 and adj.delta_units == 0:
        raise PayloadError(f"adjustment of {adj.package_label} changes nothing")
    if len(adj.note) > METRC_NOTE_LIMIT:
        raise PayloadError(f"adjustment note is {len(adj.note)} characters; Metrc allows {METRC_NOTE_LIMIT}")
    if adj.unit_of_measure in COUNT_UNITS:
        quantity = float(adj.delta_units)
    else:
        quantity = (
            -state_quantity(adj.unit_of_measure, abs(adj.delta_mg), 0)
            if adj.delta_mg < 0
            else state_quantity(adj.unit_of_measure, adj.delta_mg, 0)
        )
    return {
        "Label": adj.package_label,
        "Quantity": quantity,
        "UnitOfMeasure": adj.unit_of_measure,
        "AdjustmentReason": adj.reason,
        "AdjustmentDate": local_date(adj.adjusted_at, adj.store_time_zone).isoformat(),
        "ReasonNote": adj.note or None,
    }


# -- BioTrack -----------------------------------------------------------------------------------------------


def _biotrack_quantity(unit_of_measure: str, quantity_mg: int, units: int) -> float:
    # BioTrack counts usable weight in grams and discrete items in units.
    if unit_of_measure in COUNT_UNITS:
        return float(units)
    return quantity_mg / 1000


def _unit_price(total_cents: int, quantity: float) -> str:
    """The 2014 ``price``: a decimal string of the price of *one* unit (gram or each), as OpenTHC's
    ``sale_dispense`` sends it ([I] ``openthc/cre-adapter`` ``lib/BioTrack.php``; ``openthc/pos``
    ``Commit.php`` sends ``unit_price``). Rounded to the cent: BioTrack's own documents would say more."""
    if quantity <= 0:
        raise PayloadError("a line must have a positive quantity to have a unit price")
    cents = round(total_cents / quantity)
    return f"{cents // 100}.{cents % 100:02d}"


def biotrack_2014_dispense(sale: StateSale) -> dict[str, Any]:
    """``sale_dispense`` fields (the client adds action, sessionid, nonce)."""
    if not sale.lines:
        raise PayloadError("a sale must have at least one line")
    data = []
    for line in sale.lines:
        _check_line_quantity(line.package_label, line.quantity_mg, line.units)
        quantity = _biotrack_quantity(line.unit_of_measure, line.quantity_mg, line.units)
        data.append(
            {
                "barcodeid": line.package_label,
                "quantity": quantity,
                "price": _unit_price(line.total_price_cents, quantity),
            }
        )
    out: dict[str, Any] = {
        "terminal_id": sale.terminal_id,
        "sale_time": int(_require_aware(sale.sold_at, "sale time").timestamp()),
        "data": data,
    }
    if sale.patient_license:
        out["card_id"] = sale.patient_license
    return out


def biotrack_2014_refund_items(ret: StateReturn) -> list[dict[str, Any]]:
    """``sale_refund`` data: what comes back, priced per unit like ``sale_dispense``."""
    units_of = {line.package_label: line.unit_of_measure for line in ret.sale.lines}
    out = []
    for r in ret.returned:
        quantity = _biotrack_quantity(units_of.get(r.package_label, "Grams"), r.quantity_mg, r.units)
        out.append(
            {
                "barcodeid": r.package_label,
                "quantity": quantity,
                "price": _unit_price(r.refund_cents, quantity),
            }
        )
    return out


def biotrack_rest_dispense(
    sale: StateSale,
    *,
    location_license: str,
    request_id: str,
    flavour: Literal["2022", "2024"] = "2022",
    card_key: str | None = None,
) -> dict[str, Any]:
    """POST /v1/dispense (2022) or /v1/sale (2024). Numbers must be JSON numbers; time RFC 3339 with offset.

    2022 ([I] ``openthc/bunk`` mock comments, ``openthc/pos`` ``Commit.php``): ``LocationLicense``, ``Items``
    with ``Tax``; a medical sale sends ``"Type": "MEDICAL"`` and ``PatientCardKey``, the ``CardKey`` the patient
    lookup answered. 2024 ([I] ``openthc/bunk`` ``lib/BioTrack2024``; its request bodies are not in the
    mock, so these names follow its sale object): ``Location`` as an integer, ``Item`` with ``TaxCollected``,
    ``CardID`` for a medical sale."""
    if not sale.lines:
        raise PayloadError("a sale must have at least one line")
    items = []
    for line in sale.lines:
        _check_line_quantity(line.package_label, line.quantity_mg, line.units)
        tax = {"Excise": dollars(line.excise_tax_cents), "Other": dollars(line.other_tax_cents)}
        item = {
            "Barcode": line.package_label,
            "Price": dollars(line.total_price_cents),
            "Quantity": _biotrack_quantity(line.unit_of_measure, line.quantity_mg, line.units),
        }
        item["Tax" if flavour == "2022" else "TaxCollected"] = tax
        items.append(item)
    medical = sale.customer_type != "Consumer"
    stamp = _require_aware(sale.sold_at, "sale time").astimezone(UTC).isoformat(timespec="seconds")
    body: dict[str, Any] = {
        "Type": "MEDICAL" if medical else "RECREATIONAL",
        "TerminalID": sale.terminal_id,
        "Datetime": stamp.replace("+00:00", "Z"),
        "ExternalID": sale.external_receipt_number,
        "RequestID": request_id,
    }
    if flavour == "2022":
        body |= {"LocationLicense": location_license, "Items": items}
    else:
        if not location_license.isdigit():
            raise PayloadError(f"BioTrack 2024 takes the location as a number, not {location_license!r}")
        body |= {"Location": int(location_license), "Item": items}
    if medical and flavour == "2022":
        if not card_key:
            raise PayloadError("a 2022 medical sale needs the card key the patient lookup answers")
        body["PatientCardKey"] = card_key
    elif medical:
        body["CardID"] = sale.patient_license
    return body


def biotrack_adjustment(adj: StateAdjustment) -> dict[str, Any]:
    """``inventory_adjust`` data: BioTrack takes the package's new quantity and a type code."""
    kind = BIOTRACK_ADJUST_TYPE.get(adj.reason)
    if kind is None:
        raise PayloadError(f"no BioTrack adjustment type for reason {adj.reason!r}")
    if adj.resulting_mg < 0 or adj.resulting_units < 0:
        raise PayloadError("a package quantity cannot go below zero")
    counted = adj.unit_of_measure in COUNT_UNITS
    return {
        "barcodeid": adj.package_label,
        "quantity": float(adj.resulting_units) if counted else adj.resulting_mg / 1000,
        "quantity_uom": "ea" if counted else "g",
        "type": kind,
        "reason": adj.note or adj.reason,
    }
