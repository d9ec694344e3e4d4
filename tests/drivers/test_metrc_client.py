"""The Metrc client against the real sandbox over loopback HTTP, once with the sandbox answering Metrc's
documented PascalCase and once with the camelCase some states answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
import trio

from drivers.metrc import MetrcClient, windows
from drivers.state_errors import OutcomeUnknown, StateAuthError, StateRejected, StateUnavailable
from drivers.state_http import GetLimiter
from sandbox import demo
from sandbox.testing import SandboxAdmin, running_sandbox

BLUE_DREAM = demo.METRC_PACKAGES[0][0]  # 40 Each
BULK_OG = demo.METRC_PACKAGES[2][0]  # 453.592 Grams


@pytest.fixture(params=["pascal", "camel"])
async def sandbox(request, tmp_path):
    async with running_sandbox(tmp_path, casing=request.param) as handle:
        yield handle


@pytest.fixture
async def metrc(sandbox):
    async with MetrcClient(
        sandbox.url,
        demo.METRC_VENDOR_KEY,
        demo.METRC_USER_KEY,
        demo.METRC_LICENSE,
        timeout=httpx.Timeout(5.0),
    ) as client:
        yield client


@pytest.fixture
async def admin(sandbox):
    async with SandboxAdmin(sandbox.url) as client:
        yield client


def local_now() -> str:
    now = datetime.now(UTC).astimezone(ZoneInfo(demo.METRC_TIME_ZONE)) - timedelta(minutes=5)
    return now.replace(tzinfo=None).isoformat(timespec="milliseconds")


def receipt(
    external: str, label: str = BLUE_DREAM, quantity: float = 1, unit: str = "Each", amount: float = 35.0
):
    return {
        "SalesDateTime": local_now(),
        "ExternalReceiptNumber": external,
        "SalesCustomerType": "Consumer",
        "PatientLicenseNumber": None,
        "CaregiverLicenseNumber": None,
        "IdentificationMethod": None,
        "Transactions": [
            {"PackageLabel": label, "Quantity": quantity, "UnitOfMeasure": unit, "TotalAmount": amount}
        ],
    }


async def test_receipt_is_stored_and_found_by_external_number(metrc):
    with trio.fail_after(10):
        await metrc.post_receipts([receipt("R-1", quantity=2, amount=70.0)])
        found = await metrc.receipts_by_external_number("R-1")
        assert [r.external_receipt_number for r in found] == ["R-1"]
        assert found[0].transactions[0].package_label == BLUE_DREAM
        assert found[0].total_price == 70.0
        assert (await metrc.package(BLUE_DREAM)).quantity == 38
        assert await metrc.receipts_by_external_number("R-404") == []


async def test_row_errors_name_the_entry_that_caused_them_and_nothing_is_applied(metrc, admin):
    with trio.fail_after(10):
        bad = receipt("R-2", label="1A4FF0300000387000009999")
        with pytest.raises(StateRejected) as caught:
            await metrc.post_receipts([receipt("R-1"), bad])
        assert [e.row for e in caught.value.row_errors] == [1]
        assert "does not exist" in caught.value.for_row(1)[0].message
        assert caught.value.for_row(0) == []
        assert (await admin.state())["receipts"] == []


async def test_refused_sales_time_with_offset_and_quantity_below_zero(metrc):
    with trio.fail_after(10):
        with_offset = receipt("R-3")
        with_offset["SalesDateTime"] = "2024-05-01T16:44:53-06:00"
        with pytest.raises(StateRejected, match="without a time zone"):
            await metrc.post_receipts([with_offset])
        with pytest.raises(StateRejected, match="below zero"):
            await metrc.post_receipts([receipt("R-4", quantity=41)])
        # A gram over what is left of a bulk package is refused; exactly what is left is accepted.
        with pytest.raises(StateRejected, match="below zero"):
            await metrc.post_receipts([receipt("R-5", label=BULK_OG, quantity=453.593, unit="Grams")])
        await metrc.post_receipts([receipt("R-6", label=BULK_OG, quantity=453.592, unit="Grams")])
        assert (await metrc.package(BULK_OG)).quantity == 0


async def test_stored_but_response_lost_is_outcome_unknown_then_found(metrc, admin):
    with trio.fail_after(10):
        await admin.set_faults(drop_every=1, drop_methods=["POST"])
        with pytest.raises(OutcomeUnknown):
            await metrc.post_receipts([receipt("R-LOST")])
        await admin.clear_faults()
        found = await metrc.receipts_by_external_number("R-LOST")
        assert len(found) == 1  # it was stored exactly once; the outbox must not resend


async def test_outage_is_unavailable_and_500_on_write_is_unknown(metrc, admin):
    with trio.fail_after(10):
        await admin.set_faults(outage_seconds=30)
        with pytest.raises(StateUnavailable):
            await metrc.post_receipts([receipt("R-OUT")])
        with pytest.raises(StateUnavailable):
            await metrc.package(BLUE_DREAM)
        await admin.set_faults(outage=False, error_rate=1.0)
        with pytest.raises(OutcomeUnknown):
            await metrc.post_receipts([receipt("R-500")])
        await admin.clear_faults()
        assert await metrc.receipts_by_external_number("R-OUT") == []
        assert await metrc.receipts_by_external_number("R-500") == []


async def test_nothing_listening_is_unavailable(tmp_path):
    with trio.fail_after(10):
        async with MetrcClient("http://127.0.0.1:9", "v", "u", "L") as client:
            with pytest.raises(StateUnavailable):
                await client.post_receipts([receipt("X")])


async def test_bad_keys_are_auth_errors(sandbox):
    with trio.fail_after(10):
        async with MetrcClient(sandbox.url, demo.METRC_VENDOR_KEY, "wrong", demo.METRC_LICENSE) as client:
            with pytest.raises(StateAuthError):
                await client.packages_active()
        async with MetrcClient(sandbox.url, demo.METRC_VENDOR_KEY, demo.METRC_USER_KEY, "NOT-MINE") as client:
            with pytest.raises(StateAuthError):
                await client.packages_active()


async def test_per_employee_user_key_is_recorded(metrc, admin):
    with trio.fail_after(10):
        await metrc.post_receipts([receipt("R-MGR")], user_key=demo.METRC_MANAGER_KEY)
        [stored] = (await admin.state())["receipts"]
        assert stored["recorded_by"] == demo.METRC_MANAGER_NAME


async def test_429_backs_off_and_every_get_succeeds(metrc, admin):
    with trio.fail_after(20):
        await admin.set_faults(get_rate_per_second=3)
        labels = [p[0] for p in demo.METRC_PACKAGES]
        results = {}

        async def fetch(label):
            results[label] = await metrc.package(label)

        async with trio.open_nursery() as nursery:
            for label in labels:
                nursery.start_soon(fetch, label)
        assert sorted(results) == sorted(labels)
        assert all(results[label] is not None for label in labels)
        assert (await admin.faults())["counters"]["rate_limited"] > 0


async def test_paging_and_windows(metrc, admin):
    with trio.fail_after(20):
        extra = [
            {"label": f"1A4FF03000003870000{n:05d}", "item_name": "Planted", "unit": "Each", "quantity": 5}
            for n in range(1000, 1045)
        ]
        await admin.upsert_packages(extra)
        everything = await metrc.packages_active()
        assert len(everything) == len(demo.METRC_PACKAGES) + 45
        assert len({p.label for p in everything}) == len(everything)
        three_days = await metrc.packages_active(last_modified_start=datetime.now(UTC) - timedelta(days=3))
        assert {p.label for p in three_days} == {p.label for p in everything}
        assert (
            await metrc.packages_active(
                last_modified_start=datetime.now(UTC) - timedelta(days=3),
                last_modified_end=datetime.now(UTC) - timedelta(days=2),
            )
            == []
        )


def test_windows_never_exceed_24_hours():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    cut = windows(start, start + timedelta(hours=50))
    assert [hi - lo for lo, hi in cut] == [timedelta(hours=24), timedelta(hours=24), timedelta(hours=2)]
    assert cut[0][0] == start and cut[-1][1] == start + timedelta(hours=50)


async def test_void_restores_quantity_and_moves_receipt_to_inactive(metrc):
    with trio.fail_after(10):
        await metrc.post_receipts([receipt("R-V", quantity=3)])
        [stored] = await metrc.receipts_by_external_number("R-V")
        assert [r.id for r in await metrc.receipts_active()] == [stored.id]
        await metrc.delete_receipt(stored.id)
        assert (await metrc.package(BLUE_DREAM)).quantity == 40
        assert [r.id for r in await metrc.receipts_inactive()] == [stored.id]
        with pytest.raises(StateRejected, match="already been voided"):
            await metrc.delete_receipt(stored.id)


async def test_adjust_with_reason_then_finish(metrc, admin):
    with trio.fail_after(10):
        today = datetime.now(UTC).date().isoformat()
        reasons = {r.name: r for r in await metrc.adjust_reasons()}
        assert reasons["Theft"].requires_note
        with pytest.raises(StateRejected, match="requires a ReasonNote"):
            await metrc.adjust_packages(
                [
                    {
                        "Label": BLUE_DREAM,
                        "Quantity": -1,
                        "UnitOfMeasure": "Each",
                        "AdjustmentReason": "Theft",
                        "AdjustmentDate": today,
                        "ReasonNote": None,
                    }
                ]
            )
        with pytest.raises(StateRejected, match="below zero"):
            await metrc.adjust_packages(
                [
                    {
                        "Label": BLUE_DREAM,
                        "Quantity": -41,
                        "UnitOfMeasure": "Each",
                        "AdjustmentReason": "Scale Variance",
                        "AdjustmentDate": today,
                    }
                ]
            )
        with pytest.raises(StateRejected, match="only empty packages finish"):
            await metrc.finish_packages([{"Label": BLUE_DREAM, "ActualDate": today}])
        await metrc.adjust_packages(
            [
                {
                    "Label": BLUE_DREAM,
                    "Quantity": -40,
                    "UnitOfMeasure": "Each",
                    "AdjustmentReason": "Entry Error",
                    "AdjustmentDate": today,
                    "ReasonNote": "counted twice at intake",
                }
            ]
        )
        await metrc.finish_packages([{"Label": BLUE_DREAM, "ActualDate": today}])
        assert (await metrc.package(BLUE_DREAM)).is_finished
        assert BLUE_DREAM not in {p.label for p in await metrc.packages_active()}
        with pytest.raises(StateRejected, match="finished"):
            await metrc.post_receipts([receipt("R-F")])
        await metrc.unfinish_packages([BLUE_DREAM])
        await metrc.set_package_quantities(
            [
                {
                    "Label": BLUE_DREAM,
                    "Quantity": 12,
                    "UnitOfMeasure": "Each",
                    "AdjustmentReason": "Incorrect Quantity",
                    "AdjustmentDate": today,
                    "ReasonNote": "recount",
                }
            ]
        )
        assert (await metrc.package(BLUE_DREAM)).quantity == 12
        assert [a["reason"] for a in (await admin.state())["adjustments"]] == [
            "Entry Error",
            "Incorrect Quantity",
        ]


async def test_incoming_transfer_deliveries_and_packages(metrc, admin):
    with trio.fail_after(10):
        [transfer] = await metrc.incoming_transfers()
        assert transfer.manifest_number == demo.INCOMING_MANIFEST_NUMBER
        [delivery] = await metrc.transfer_deliveries(transfer.id)
        packages = await metrc.delivery_packages(delivery.id)
        assert [p.package_label for p in packages] == [p[0] for p in demo.INCOMING_PACKAGES]
        assert {p.shipment_package_state for p in packages} == {"Shipped"}
        assert "Accepted" in await metrc.delivery_package_states()
        # Receiving happens in the Metrc UI; the hub detects it by reading the transfer again.
        first, second, _third = demo.INCOMING_PACKAGES
        await admin.receive_delivery(
            delivery.id,
            [
                {"label": first[0], "received_quantity": 48, "status": "accepted"},
                {"label": second[0], "received_quantity": second[4], "status": "accepted"},
            ],
        )
        [transfer] = await metrc.incoming_transfers()
        assert transfer.received_date_time is not None
        states = {
            p.package_label: (p.shipment_package_state, p.received_quantity)
            for p in await metrc.delivery_packages(delivery.id)
        }
        assert states[first[0]] == ("Accepted", 48)
        assert states[demo.INCOMING_PACKAGES[2][0]] == ("Rejected", 0)
        assert (await metrc.package(first[0])).received_from_manifest_number == demo.INCOMING_MANIFEST_NUMBER


async def test_patient_status_is_cached_for_a_minute(metrc, admin):
    with trio.fail_after(10):
        patient = demo.PATIENTS[0][0]
        status = await metrc.patient_status(patient)
        assert status.active and status.flower_ounces_available == 2.0
        await admin.upsert_patients([{"patient_license": patient, "flower_oz": 0.25}])
        assert (await metrc.patient_status(patient)).flower_ounces_available == 2.0
        assert (await metrc.patient_status(patient, fresh=True)).flower_ounces_available == 0.25
        assert await metrc.patient_status("NOBODY") is None
        caregiver = await metrc.caregiver_status(demo.CAREGIVERS[0][0])
        assert caregiver.active
        assert await metrc.caregiver_status("NOBODY") is None


async def test_patient_sale_draws_down_state_allotment(metrc):
    with trio.fail_after(10):
        patient = demo.PATIENTS[0][0]
        sale = receipt("R-MED", label=BULK_OG, quantity=28.349523125, unit="Grams", amount=100)
        sale["SalesCustomerType"] = "Patient"
        sale["PatientLicenseNumber"] = patient
        await metrc.post_receipts([sale])
        assert (await metrc.patient_status(patient, fresh=True)).flower_ounces_available == pytest.approx(1.0)
        inactive = receipt("R-MED2")
        inactive["SalesCustomerType"] = "Patient"
        inactive["PatientLicenseNumber"] = demo.PATIENTS[2][0]
        with pytest.raises(StateRejected, match="active registration"):
            await metrc.post_receipts([inactive])


async def test_reference_data(metrc):
    with trio.fail_after(10):
        assert "Patient" in await metrc.customer_types()
        units = {u.name: u for u in await metrc.units_of_measure()}
        assert units["Grams"].quantity_type == "WeightBased"
        assert "Buds" in {c.name for c in await metrc.item_categories()}
        [facility] = await metrc.facilities()
        assert facility.license.number == demo.METRC_LICENSE


async def test_get_limiter_allows_50_per_second_under_mock_clock(autojump_clock):
    limiter = GetLimiter(per_second=50, concurrency=10)
    start = trio.current_time()
    for _ in range(120):
        async with limiter.slot():
            pass
    # 50 in the first second, 50 in the second, 20 in the third.
    assert trio.current_time() - start >= 2.0


async def test_get_limiter_caps_concurrency(autojump_clock):
    limiter = GetLimiter(per_second=1000, concurrency=10)
    in_flight = peak = 0

    async def one():
        nonlocal in_flight, peak
        async with limiter.slot():
            in_flight += 1
            peak = max(peak, in_flight)
            await trio.sleep(0.1)
            in_flight -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(30):
            nursery.start_soon(one)
    assert peak == 10
