"""Metrc and BioTrack payloads from the hub's integer units and UTC instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from hub.domain.state_payloads import (
    PayloadError,
    StateAdjustment,
    StateReturn,
    StateReturnLine,
    StateSale,
    StateSaleLine,
    biotrack_2014_dispense,
    biotrack_2014_refund_items,
    biotrack_adjustment,
    biotrack_rest_dispense,
    metrc_adjustment,
    metrc_local_time,
    metrc_receipt,
    metrc_receipt_update,
    sale_after_return,
    state_quantity,
)

DENVER = "America/Denver"
FLOWER = StateSaleLine(
    package_label="1A4A", unit_of_measure="Grams", quantity_mg=3_543, total_price_cents=3_499
)
PREROLL = StateSaleLine(package_label="1A4B", unit_of_measure="Each", units=2, total_price_cents=2_400)


def sale(**kw) -> StateSale:
    base = dict(
        external_receipt_number="S-000123",
        sold_at=datetime(2024, 7, 4, 2, 30, 15, tzinfo=UTC),  # 20:30:15 on 3 July in Denver (MDT)
        store_time_zone=DENVER,
        lines=(FLOWER, PREROLL),
    )
    base.update(kw)
    return StateSale(**base)


def test_metrc_receipt_in_local_time_without_offset_and_state_units():
    body = metrc_receipt(sale())
    assert body["SalesDateTime"] == "2024-07-03T20:30:15.000"
    assert body["ExternalReceiptNumber"] == "S-000123"
    assert body["SalesCustomerType"] == "Consumer"
    assert body["Transactions"] == [
        {"PackageLabel": "1A4A", "Quantity": 3.543, "UnitOfMeasure": "Grams", "TotalAmount": 34.99},
        {"PackageLabel": "1A4B", "Quantity": 2.0, "UnitOfMeasure": "Each", "TotalAmount": 24.0},
    ]
    assert metrc_receipt_update(sale(), 51)["Id"] == 51


def test_local_time_follows_daylight_saving():
    winter = datetime(2024, 1, 15, 19, 0, tzinfo=UTC)
    summer = datetime(2024, 7, 15, 19, 0, tzinfo=UTC)
    assert metrc_local_time(winter, DENVER) == "2024-01-15T12:00:00.000"
    assert metrc_local_time(summer, DENVER) == "2024-07-15T13:00:00.000"
    # An instant given in another offset is still the same instant.
    same = summer.astimezone(timezone(timedelta(hours=9)))
    assert metrc_local_time(same, DENVER) == "2024-07-15T13:00:00.000"


def test_naive_time_is_refused():
    with pytest.raises(PayloadError, match="timezone-aware"):
        metrc_receipt(sale(sold_at=datetime(2024, 7, 4, 2, 30)))


def test_unit_conversion_to_the_milligram():
    assert state_quantity("Grams", 1, 0) == 0.001
    assert state_quantity("Grams", 28_349, 0) == 28.349
    assert state_quantity("Milligrams", 100, 0) == 100
    assert state_quantity("Ounces", 28_350, 0) == pytest.approx(1.0, abs=2e-5)
    assert state_quantity("Each", 0, 3) == 3.0
    with pytest.raises(PayloadError, match="takes units"):
        state_quantity("Each", 500, 0)
    with pytest.raises(PayloadError, match="takes milligrams"):
        state_quantity("Grams", 0, 1)
    with pytest.raises(PayloadError, match="unknown unit"):
        state_quantity("Handfuls", 1, 0)


def test_patient_sale_needs_the_patient():
    with pytest.raises(PayloadError, match="patient"):
        metrc_receipt(sale(customer_type="Patient"))
    body = metrc_receipt(sale(customer_type="Patient", patient_license="CO-MED-1"))
    assert body["PatientLicenseNumber"] == "CO-MED-1"


def test_empty_or_zero_lines_are_refused():
    with pytest.raises(PayloadError):
        metrc_receipt(sale(lines=()))
    zero = StateSaleLine(package_label="X", unit_of_measure="Grams", quantity_mg=0, total_price_cents=0)
    with pytest.raises(PayloadError, match="positive"):
        metrc_receipt(sale(lines=(zero,)))


def test_partial_return_rewrites_the_receipt_and_full_return_voids():
    ret = StateReturn(
        sale=sale(),
        returned=(StateReturnLine(package_label="1A4B", units=1, refund_cents=1_200),),
        returned_at=datetime(2024, 7, 5, tzinfo=UTC),
    )
    after = sale_after_return(ret)
    assert after is not None
    assert [(line.package_label, line.units, line.total_price_cents) for line in after.lines] == [
        ("1A4A", 0, 3_499),
        ("1A4B", 1, 1_200),
    ]
    everything = StateReturn(
        sale=sale(),
        returned=(
            StateReturnLine(package_label="1A4A", quantity_mg=3_543, refund_cents=3_499),
            StateReturnLine(package_label="1A4B", units=2, refund_cents=2_400),
        ),
        returned_at=datetime(2024, 7, 5, tzinfo=UTC),
    )
    assert sale_after_return(everything) is None
    too_much = StateReturn(
        sale=sale(),
        returned=(StateReturnLine(package_label="1A4A", quantity_mg=3_544, refund_cents=0),),
        returned_at=datetime(2024, 7, 5, tzinfo=UTC),
    )
    with pytest.raises(PayloadError, match="exceeds"):
        sale_after_return(too_much)
    assert biotrack_2014_refund_items(ret) == [{"barcodeid": "1A4B", "quantity": 1.0, "price": "12.00"}]


def adjustment(**kw) -> StateAdjustment:
    base = dict(
        package_label="1A4A",
        unit_of_measure="Grams",
        delta_mg=-1_250,
        resulting_mg=26_750,
        reason="Scale Variance",
        note="new certified scale",
        adjusted_at=datetime(2024, 7, 4, 3, 0, tzinfo=UTC),  # 3 July in Denver
        store_time_zone=DENVER,
    )
    base.update(kw)
    return StateAdjustment(**base)


def test_metrc_adjustment_is_relative_with_local_date():
    assert metrc_adjustment(adjustment()) == {
        "Label": "1A4A",
        "Quantity": -1.25,
        "UnitOfMeasure": "Grams",
        "AdjustmentReason": "Scale Variance",
        "AdjustmentDate": "2024-07-03",
        "ReasonNote": "new certified scale",
    }
    with pytest.raises(PayloadError, match="200"):
        metrc_adjustment(adjustment(note="x" * 201))
    with pytest.raises(PayloadError, match="changes nothing"):
        metrc_adjustment(adjustment(delta_mg=0))


def test_biotrack_adjustment_takes_the_new_quantity_and_a_type_code():
    assert biotrack_adjustment(adjustment()) == {
        "barcodeid": "1A4A",
        "quantity": 26.75,
        "quantity_uom": "g",
        "type": 4,
        "reason": "new certified scale",
    }
    assert biotrack_adjustment(adjustment(reason="Theft", note=""))["type"] == 2
    with pytest.raises(PayloadError):
        biotrack_adjustment(adjustment(reason="Cosmic rays"))


def test_biotrack_2014_dispense():
    body = biotrack_2014_dispense(sale(terminal_id="REG-1"))
    assert body == {
        "terminal_id": "REG-1",
        "sale_time": 1_720_060_215,
        "data": [
            # the unit price (per gram, per each), as OpenTHC's sale_dispense sends it
            {"barcodeid": "1A4A", "quantity": 3.543, "price": "9.88"},
            {"barcodeid": "1A4B", "quantity": 2.0, "price": "12.00"},
        ],
    }


def test_biotrack_rest_dispense_uses_numbers_and_rfc3339():
    line = StateSaleLine(
        package_label="6647",
        unit_of_measure="Grams",
        quantity_mg=1_000,
        total_price_cents=4_344,
        excise_tax_cents=423,
        other_tax_cents=247,
    )
    body = biotrack_rest_dispense(sale(lines=(line,)), location_license="90090", request_id="req-1")
    assert body["Datetime"] == "2024-07-04T02:30:15Z"
    assert body["Items"] == [
        {"Barcode": "6647", "Price": 43.44, "Quantity": 1.0, "Tax": {"Excise": 4.23, "Other": 2.47}}
    ]
    assert (body["Type"], body["RequestID"], body["ExternalID"], body["LocationLicense"]) == (
        "RECREATIONAL",
        "req-1",
        "S-000123",
        "90090",
    )
    medical = biotrack_rest_dispense(
        sale(lines=(line,), customer_type="Patient", patient_license="NM-1"),
        location_license="90090",
        request_id="r",
        flavour="2024",
    )
    assert medical["Type"] == "MEDICAL" and medical["CardID"] == "NM-1"
    assert medical["Item"][0]["TaxCollected"] == {"Excise": 4.23, "Other": 2.47}
    assert medical["Location"] == 90090  # 2024: an integer


def test_biotrack_2022_medical_sale_sends_the_card_key():
    line = StateSaleLine(package_label="6647", unit_of_measure="Each", units=1, total_price_cents=1000)
    medical = sale(lines=(line,), customer_type="Patient", patient_license="NM-1")
    body = biotrack_rest_dispense(medical, location_license="90090", request_id="r", card_key="eyJ.key")
    assert body["Type"] == "MEDICAL" and body["PatientCardKey"] == "eyJ.key" and "CardID" not in body
    with pytest.raises(PayloadError, match="card key"):
        biotrack_rest_dispense(medical, location_license="90090", request_id="r")


def test_a_second_partial_return_keeps_the_first():
    """Three sold, one back, then one more back: the receipt ends at 1, not 2."""
    three = StateSaleLine(package_label="1A4B", unit_of_measure="Each", units=3, total_price_cents=3_600)
    first = StateReturnLine(package_label="1A4B", units=1, refund_cents=1_200)
    second = StateReturn(
        sale=sale(lines=(three,)),
        returned=(StateReturnLine(package_label="1A4B", units=1, refund_cents=1_200),),
        returned_at=datetime(2024, 7, 6, tzinfo=UTC),
        earlier=(first,),
    )
    after = sale_after_return(second)
    assert after is not None and [(ln.units, ln.total_price_cents) for ln in after.lines] == [(1, 1_200)]
    before = sale_after_return(second, include_this=False)
    assert before is not None and [ln.units for ln in before.lines] == [2]
    last = msgspec.structs.replace(second, earlier=(first, first))
    assert sale_after_return(last) is None  # all three back: the receipt is voided
