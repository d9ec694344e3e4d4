"""BioTrack 2014 JSON-RPC and 2022/2024 REST clients against the real sandbox over loopback HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from drivers.biotrack import BioTrack2014Client, BioTrackRestClient
from drivers.state_errors import OutcomeUnknown, StateAuthError, StateRejected, StateUnavailable
from hub.domain.state_payloads import (
    StateAdjustment,
    StateSale,
    StateSaleLine,
    biotrack_2014_dispense,
    biotrack_adjustment,
    biotrack_rest_dispense,
)
from sandbox import demo
from sandbox.testing import SandboxAdmin, running_sandbox

UNITS_ITEM, GRAMS_ITEM = demo.BIOTRACK_INVENTORY[0][0], demo.BIOTRACK_INVENTORY[1][0]


@pytest.fixture
async def sandbox(tmp_path):
    async with running_sandbox(tmp_path) as handle:
        yield handle


@pytest.fixture
async def admin(sandbox):
    async with SandboxAdmin(sandbox.url) as client:
        yield client


@pytest.fixture
async def rpc(sandbox):
    async with BioTrack2014Client(
        f"{sandbox.url}/biotrack/serverjson.asp",
        demo.BIOTRACK_LICENSE,
        demo.BIOTRACK_USERNAME,
        demo.BIOTRACK_PASSWORD,
        timeout=httpx.Timeout(5.0),
    ) as client:
        yield client


def rest(sandbox, flavour="2022"):
    return BioTrackRestClient(
        f"{sandbox.url}/biotrack",
        demo.BIOTRACK_UBI,
        demo.BIOTRACK_USERNAME,
        demo.BIOTRACK_PASSWORD,
        demo.BIOTRACK_LICENSE,
        flavour=flavour,
        timeout=httpx.Timeout(5.0),
    )


def sale(external="S-1", *, units=2, mg=0, label=UNITS_ITEM, unit="Each", **kw):
    line = StateSaleLine(
        package_label=label, unit_of_measure=unit, units=units, quantity_mg=mg, total_price_cents=7000
    )
    return StateSale(
        external_receipt_number=external,
        sold_at=datetime.now(UTC),
        store_time_zone=demo.BIOTRACK_TIME_ZONE,
        lines=(line,),
        terminal_id="REG-1",
        **kw,
    )


def quantity(state, barcode):
    return next(p["quantity"] for p in state["packages"] if p["label"] == barcode)


async def test_2014_dispense_void_refund_and_sync(rpc, admin):
    with trio.fail_after(10):
        start = await rpc.sync_check()
        tid = await rpc.sale_dispense(biotrack_2014_dispense(sale(units=3)), nonce="n-1")
        assert quantity(await admin.state(), UNITS_ITEM) == 37
        await rpc.sale_refund(tid, [{"barcodeid": UNITS_ITEM, "quantity": 1, "price": "23.33"}], nonce="n-2")
        assert quantity(await admin.state(), UNITS_ITEM) == 38
        await rpc.sale_void(tid, nonce="n-3")
        assert quantity(await admin.state(), UNITS_ITEM) == 40
        with pytest.raises(StateRejected, match="already been voided"):
            await rpc.sale_void(tid, nonce="n-4")
        changed = await rpc.sync_inventory(start)
        assert [row["id"] for row in changed] == [UNITS_ITEM]
        assert changed[0]["remaining_quantity"] == "40.000000"
        sales = await rpc.sync_sale(start)
        # [I] the mock's row shape: strings, transactionid_original the sale
        assert sales[0]["transactionid_original"] == tid and sales[0]["deleted"] == "1"
        assert await rpc.sync_check() > start


async def test_2014_a_nonce_names_one_request_and_nonce_replay_fetches_its_answer(rpc, admin):
    """[I] openthc/cre-adapter: a per-request nonce and a separate ``nonce_replay`` action. Sending the
    same request again with its nonce is not how to ask; ``nonce_replay`` is."""
    with trio.fail_after(10):
        fields = biotrack_2014_dispense(sale())
        first = await rpc.sale_dispense(fields, nonce="same")
        with pytest.raises(StateRejected, match="already been used"):
            await rpc.sale_dispense(fields, nonce="same")
        assert len((await admin.state())["biotrack_sales"]) == 1
        replayed = await rpc.nonce_replay("same")
        assert replayed is not None and replayed["transactionid"] == first
        assert await rpc.nonce_replay("never-sent") is None


async def test_2014_lost_answer_is_found_by_nonce_replay_not_resent(rpc, admin):
    with trio.fail_after(10):
        await rpc.sync_check()  # logged in
        await admin.set_faults(drop_every=1, drop_methods=["POST"])
        with pytest.raises(OutcomeUnknown):
            await rpc.sale_dispense(biotrack_2014_dispense(sale()), nonce="lost-1")
        await admin.clear_faults()
        replayed = await rpc.nonce_replay("lost-1")
        assert replayed is not None and replayed["transactionid"]
        assert len((await admin.state())["biotrack_sales"]) == 1
        assert quantity(await admin.state(), UNITS_ITEM) == 38


async def test_2014_relogs_in_when_the_session_expires(rpc, admin):
    with trio.fail_after(10):
        await rpc.sync_check()
        await admin.expire_biotrack_sessions()
        assert await rpc.sync_check() >= 0


async def test_2014_refusals_and_bad_login(sandbox, rpc):
    with trio.fail_after(10):
        with pytest.raises(StateRejected, match="cannot dispense"):
            await rpc.sale_dispense(biotrack_2014_dispense(sale(units=41)), nonce="x")
        with pytest.raises(StateRejected, match="not found"):
            await rpc.sale_dispense(biotrack_2014_dispense(sale(label="0000000000000000")), nonce="y")
        async with BioTrack2014Client(
            f"{sandbox.url}/biotrack/serverjson.asp", demo.BIOTRACK_LICENSE, demo.BIOTRACK_USERNAME, "wrong"
        ) as bad:
            with pytest.raises(StateAuthError):
                await bad.sync_check()


async def test_2014_inventory_adjust_sets_the_new_quantity(rpc, admin):
    with trio.fail_after(10):
        adj = StateAdjustment(
            package_label=GRAMS_ITEM,
            unit_of_measure="Grams",
            delta_mg=-3_592,
            resulting_mg=450_000,
            reason="Scale Variance",
            adjusted_at=datetime.now(UTC),
            store_time_zone=demo.BIOTRACK_TIME_ZONE,
        )
        await rpc.inventory_adjust(biotrack_adjustment(adj), nonce="adj-1")
        assert quantity(await admin.state(), GRAMS_ITEM) == 450.0
        bad = biotrack_adjustment(adj) | {"type": 9}
        with pytest.raises(StateRejected, match="type 9"):
            await rpc.inventory_adjust(bad, nonce="adj-2")


async def test_2014_outage_is_unavailable(rpc, admin):
    with trio.fail_after(10):
        await admin.set_faults(outage=True)
        with pytest.raises(StateUnavailable):
            await rpc.sale_dispense(biotrack_2014_dispense(sale()), nonce="o-1")


@pytest.mark.parametrize("flavour", ["2022", "2024"])
async def test_rest_dispense_is_idempotent_by_request_id(sandbox, admin, flavour):
    with trio.fail_after(10):
        async with rest(sandbox, flavour) as client:
            body = biotrack_rest_dispense(
                sale(mg=3_500, units=0, label=GRAMS_ITEM, unit="Grams"),
                location_license=demo.BIOTRACK_LICENSE,
                request_id="req-1",
                flavour=flavour,
            )
            first = await client.dispense(body)
            assert first is not None and await client.dispense(body) == first
            assert quantity(await admin.state(), GRAMS_ITEM) == pytest.approx(453.592 - 3.5)
            [found] = await client.sales_by_request_id("req-1")
            assert found.transaction_id == first and found.external_id == "S-1" and not found.is_voided
            assert await client.sales_by_request_id("req-404") == []
            await client.void_sale(first)
            assert quantity(await admin.state(), GRAMS_ITEM) == pytest.approx(453.592)
            [voided] = await client.sales_by_request_id("req-1")
            assert voided.is_voided  # 2024: ``Deleted``; 2022 (sandbox): ``Voided``


async def test_rest_lost_answer_then_lookup_by_request_id(sandbox, admin):
    with trio.fail_after(10):
        async with rest(sandbox) as client:
            await client.inventory()  # logged in
            await admin.set_faults(drop_every=1, drop_methods=["POST"])
            body = biotrack_rest_dispense(sale(), location_license=demo.BIOTRACK_LICENSE, request_id="lost")
            with pytest.raises(OutcomeUnknown):
                await client.dispense(body)
            await admin.clear_faults()
            assert len(await client.sales_by_request_id("lost")) == 1


async def test_rest_refuses_offsets_go_cannot_parse_and_string_numbers(sandbox):
    with trio.fail_after(10):
        async with rest(sandbox) as client:
            body = biotrack_rest_dispense(sale(), location_license=demo.BIOTRACK_LICENSE, request_id="r-1")
            with pytest.raises(StateRejected, match="RFC 3339"):
                await client.dispense(body | {"Datetime": "2024-09-28T16:20:00-0600"})
            with pytest.raises(StateRejected, match="cannot unmarshal"):
                await client.dispense(
                    body | {"RequestID": "r-2", "Items": [body["Items"][0] | {"Price": "70.00"}]}
                )


async def test_rest_patient_lookup_and_relogin(sandbox, admin):
    with trio.fail_after(10):
        async with rest(sandbox, "2024") as client:
            card = await client.patient_lookup(demo.BIOTRACK_CARDS[0][0])
            assert card.card_active and card.card_limit == 230.0 and card.card_key == "key-101"
            # [I] the mock's sample: one Privileges string, string date parts
            assert card.privileges == "Qualified Patient (QP)" and card.card_expiration.as_date().year > 2000
            await admin.expire_biotrack_sessions()
            inactive = await client.patient_lookup(demo.BIOTRACK_CARDS[1][0])
            assert not inactive.card_active
            assert await client.patient_lookup("NM-NOBODY") is None
            medical = biotrack_rest_dispense(
                sale(
                    mg=30_000,
                    units=0,
                    label=GRAMS_ITEM,
                    unit="Grams",
                    customer_type="Patient",
                    patient_license=demo.BIOTRACK_CARDS[0][0],
                ),
                location_license=demo.BIOTRACK_LICENSE,
                request_id="med-1",
                flavour="2024",
            )
            await client.dispense(medical)
            assert (await client.patient_lookup(demo.BIOTRACK_CARDS[0][0])).card_limit == 200.0


async def test_rest_adjust_and_receive_transfer(sandbox, admin):
    with trio.fail_after(10):
        async with rest(sandbox, "2024") as client:
            await client.inventory_adjust(
                [{"Barcode": UNITS_ITEM, "Quantity": 39, "Type": 2, "Reason": "shoplifted"}]
            )
            assert (await client.inventory(UNITS_ITEM))[0].quantity == 39
            with pytest.raises(StateRejected, match="below zero"):
                await client.inventory_adjust(
                    [{"Barcode": UNITS_ITEM, "Quantity": -1, "Type": 4, "Reason": "x"}]
                )
            [inbound] = await client.inbound_transfers()
            flower, gummies = demo.BIOTRACK_INBOUND
            await client.receive_transfer(
                inbound.transfer_id,
                [{"Barcode": flower[0], "ReceivedQuantity": 220.0, "Status": "accepted"}],
            )
            [after] = await client.inbound_transfers()
            status = {i.barcode: (i.status, i.received_quantity) for i in after.item}
            assert status == {flower[0]: ("accepted", 220.0), gummies[0]: ("rejected", 0.0)}
            assert (await client.inventory(flower[0]))[0].quantity == 220.0
            with pytest.raises(StateRejected, match="already been received"):
                await client.receive_transfer(inbound.transfer_id, [])


async def test_rest_bad_credentials(sandbox):
    with trio.fail_after(10):
        client = BioTrackRestClient(
            f"{sandbox.url}/biotrack",
            demo.BIOTRACK_UBI,
            demo.BIOTRACK_USERNAME,
            "wrong",
            demo.BIOTRACK_LICENSE,
        )
        async with client:
            with pytest.raises(StateAuthError):
                await client.inventory()


# -- the public samples ([C] confirmed, [I] inferred from OpenTHC's client and mocks) ----------------------

BT_SAMPLES = json.loads((Path(__file__).parents[1] / "state" / "documented" / "biotrack.json").read_text())


def test_the_public_samples_decode() -> None:
    from drivers.biotrack import CardStatus, Dispensed, RestSale, listed
    from drivers.state_http import convert

    def read(name: str, type_: Any) -> Any:
        return convert(BT_SAMPLES[name]["response"], type_, system="biotrack", endpoint=name)

    card = read("patient_lookup_2022", CardStatus)
    assert card.card_active and card.card_limit == pytest.approx(229.49762)
    assert card.card_expiration.as_date().isoformat() == "2023-09-16"  # string parts
    assert card.privileges == "Qualified Patient (QP)" and card.card_key.startswith("eyJ")
    # 2022 answers the sale's id at the top; 2024 inside Sale[] (the top-level one is something else)
    assert read("dispense_2022", Dispensed).sale_transaction_id == 1234
    assert read("post_sale_2024", Dispensed).sale_transaction_id == 77
    sale = convert(BT_SAMPLES["sale_2024"]["response"]["Sale"], RestSale, system="biotrack", endpoint="s")
    assert sale.is_voided and sale.item[0].barcode == "string"  # ``Deleted`` means voided
    rows = listed(BT_SAMPLES["sales_2024"]["response"], "Sale")
    assert len(rows) == 1 and rows[0]["Deleted"] is True


def test_the_2022_dispense_body_has_the_sample_s_names_and_types() -> None:
    sample = BT_SAMPLES["dispense_2022"]["request"]
    body = biotrack_rest_dispense(sale(), location_license="90090", request_id="r-1")
    assert set(body) == set(sample)
    for key, value in body.items():
        assert type(value) is type(sample[key]) or {type(value), type(sample[key])} <= {int, float}, key
    assert set(body["Items"][0]) == set(sample["Items"][0])


async def test_the_sandbox_2024_sale_has_the_mock_s_keys(sandbox) -> None:
    documented = BT_SAMPLES["sale_2024"]["response"]["Sale"]
    async with rest(sandbox, "2024") as client:
        body = biotrack_rest_dispense(
            sale(), location_license=demo.BIOTRACK_LICENSE, request_id="k-1", flavour="2024"
        )
        tid = await client.dispense(body)
        await client.void_sale(tid)
        response = await client._http.get(
            f"/v1/sale/{tid}", headers={"authorization": f"Bearer {client._token}"}
        )
    got = response.json()["Sale"]
    assert set(documented) <= set(got) and set(got) - set(documented) <= {"Refund"}
    assert got["Deleted"] is True and isinstance(got["Location"], int)
    assert set(got["Item"][0]) == set(documented["Item"][0])
