"""``hub.state_channel.senders.LOOKUPS``, row by row: for every system and outbox kind, a request the state
stored whose answer was lost is *found* by the lookup (and so never sent twice), and a request that never
arrived is not. Senders over the real clients, against the sandbox over loopback HTTP; Metrc both in its
documented PascalCase and in camelCase."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
import trio

from drivers.biotrack import BioTrack2014Client, BioTrackRestClient
from drivers.metrc import MetrcClient
from hub.domain.outbox import EntryKind, OutboxEntry
from hub.domain.state_payloads import (
    StateAdjustment,
    StateReturn,
    StateReturnLine,
    StateSale,
    StateSaleLine,
    StateVoid,
)
from hub.state_channel.senders import (
    LOOKUPS,
    BioTrack2014Sender,
    BioTrackRestSender,
    MetrcSender,
)
from hub.store.env import encode
from sandbox import demo
from sandbox.testing import SandboxAdmin, running_sandbox

NOW = datetime.now(UTC) - timedelta(minutes=2)
KINDS: tuple[EntryKind, ...] = ("sale", "void", "return", "adjustment")
SYSTEMS = ["metrc-pascal", "metrc-camel", "biotrack-2014", "biotrack-2022", "biotrack-2024"]


def test_the_table_has_a_row_for_every_system_and_kind() -> None:
    assert set(LOOKUPS) == {"metrc", "biotrack-2014", "biotrack-rest"}
    for rows in LOOKUPS.values():
        assert set(rows) == set(KINDS) and all(rows.values())
    for kind in KINDS:  # each Metrc row is a method of its own
        assert callable(getattr(MetrcSender, f"_lookup_{kind}"))


@dataclass
class Rig:
    system: str
    sender: Any
    admin: SandboxAdmin
    label: str
    unit: str
    seq: int = 0

    def entry(self, kind: EntryKind, key: str, payload: Any) -> OutboxEntry:
        self.seq += 1
        return OutboxEntry(
            seq=self.seq,
            kind=kind,
            licence="L",
            idempotency_key=key,
            payload=encode(payload),
            package_labels=(self.label,),
            created_at=NOW,
            next_attempt_at=NOW,
        )

    def sale(self, key: str, units: int) -> StateSale:
        line = StateSaleLine(
            package_label=self.label, unit_of_measure=self.unit, units=units, total_price_cents=1000 * units
        )
        zone = demo.METRC_TIME_ZONE if self.system.startswith("metrc") else demo.BIOTRACK_TIME_ZONE
        return StateSale(
            external_receipt_number=key, sold_at=NOW, store_time_zone=zone, lines=(line,), terminal_id="R1"
        )

    async def lost(self, entry: OutboxEntry) -> str:
        """Send with the answer dropped; then look it up. Returns the lookup's outcome."""
        await self.admin.set_faults(drop_every=1, drop_methods=["POST", "PUT", "DELETE"])
        sent = await self.sender.send(entry)
        assert sent.outcome == "outcome_unknown", sent
        assert (await self.admin.faults())["counters"]["dropped"] == 1
        await self.admin.clear_faults()
        found = await self.sender.lookup(entry)
        if found.outcome == "found" and found.state_ref:
            self.sender.refs[entry.idempotency_key] = found.state_ref
        return found.outcome

    async def quantity(self) -> float:
        state = await self.admin.state()
        return float(next(p["quantity"] for p in state["packages"] if p["label"] == self.label))


@pytest.fixture(params=SYSTEMS)
async def rig(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Rig]:
    system = request.param
    casing = "camel" if system == "metrc-camel" else "pascal"
    async with running_sandbox(tmp_path, casing=casing) as sandbox, SandboxAdmin(sandbox.url) as admin:
        timeout = httpx.Timeout(5.0)
        refs: dict[str, str] = {}
        if system.startswith("metrc"):
            client: Any = MetrcClient(
                sandbox.url, demo.METRC_VENDOR_KEY, demo.METRC_USER_KEY, demo.METRC_LICENSE, timeout=timeout
            )
            sender: Any = MetrcSender(client)
            sender.refs = refs
            label, unit = demo.METRC_PACKAGES[0][0], "Each"
        elif system == "biotrack-2014":
            client = BioTrack2014Client(
                f"{sandbox.url}/biotrack/serverjson.asp",
                demo.BIOTRACK_LICENSE,
                demo.BIOTRACK_USERNAME,
                demo.BIOTRACK_PASSWORD,
                timeout=timeout,
            )
            await client.sync_check()  # log in before faults
            sender = BioTrack2014Sender(client, refs)
            label, unit = demo.BIOTRACK_INVENTORY[0][0], "Each"
        else:
            client = BioTrackRestClient(
                f"{sandbox.url}/biotrack",
                demo.BIOTRACK_UBI,
                demo.BIOTRACK_USERNAME,
                demo.BIOTRACK_PASSWORD,
                demo.BIOTRACK_LICENSE,
                flavour=system.removeprefix("biotrack-"),  # type: ignore[arg-type]
                timeout=timeout,
            )
            await client.sales_by_request_id("warm-up")  # log in before faults
            sender = BioTrackRestSender(client, demo.BIOTRACK_LICENSE, refs)
            label, unit = demo.BIOTRACK_INVENTORY[0][0], "Each"
        try:
            yield Rig(system, sender, admin, label, unit)
        finally:
            await sender.aclose()


async def test_stored_but_the_answer_lost_is_found_for_every_kind(rig: Rig) -> None:
    with trio.fail_after(30):
        start = await rig.quantity()
        # sale: never sent -> not found; sent with its answer lost -> found, once
        sale = rig.sale("LK-1", 3)
        entry = rig.entry("sale", "LK-1", sale)
        assert (await rig.sender.lookup(entry)).outcome == "not_found"
        assert await rig.lost(entry) == "found"
        assert await rig.quantity() == start - 3
        # a partial return (Metrc: a PUT of the sale minus it)
        ret = StateReturn(
            sale=sale,
            returned=(StateReturnLine(package_label=rig.label, units=1, refund_cents=1000),),
            returned_at=NOW,
        )
        ret_entry = rig.entry("return", "return-LK-1-1", ret)
        assert await rig.lost(ret_entry) == "found"
        assert await rig.quantity() == start - 2
        # a second partial return, carrying the first (the receipt ends at 1 of 3)
        ret2 = StateReturn(sale=sale, returned=ret.returned, returned_at=NOW, earlier=ret.returned)
        assert await rig.lost(rig.entry("return", "return-LK-1-2", ret2)) == "found"
        assert await rig.quantity() == start - 1
        # a void of another sale
        other = rig.sale("LK-2", 2)
        other_entry = rig.entry("sale", "LK-2", other)
        sent = await rig.sender.send(other_entry)
        assert sent.outcome == "sent", sent
        rig.sender.refs["LK-2"] = sent.state_ref
        void = rig.entry("void", "void-LK-2", StateVoid(external_receipt_number="LK-2", voided_at=NOW))
        assert (await rig.sender.lookup(void)).outcome == "not_found"
        assert await rig.lost(void) == "found"
        assert await rig.quantity() == start - 1
        # an adjustment
        now_qty = await rig.quantity()
        adj = StateAdjustment(
            package_label=rig.label,
            unit_of_measure=rig.unit,
            delta_units=-1,
            resulting_units=int(now_qty) - 1,
            reason="Theft" if rig.system.startswith("metrc") else "Theft",
            note="missing at count",
            adjusted_at=NOW,
            store_time_zone=demo.METRC_TIME_ZONE,
        )
        adj_entry = rig.entry("adjustment", "adjust-LK-1", adj)
        outcome = await rig.lost(adj_entry)
        if rig.system.startswith("biotrack-20") and rig.system != "biotrack-2014":
            # REST: no lookup; the adjustment sets the new quantity, so sending it again changes nothing
            assert outcome == "not_found"
            assert (await rig.sender.send(adj_entry)).outcome == "sent"
        else:
            assert outcome == "found"
        assert await rig.quantity() == now_qty - 1


async def test_a_full_return_whose_answer_is_lost_is_found(rig: Rig) -> None:
    with trio.fail_after(30):
        start = await rig.quantity()
        sale = rig.sale("FR-1", 2)
        sent = await rig.sender.send(rig.entry("sale", "FR-1", sale))
        assert sent.outcome == "sent"
        rig.sender.refs["FR-1"] = sent.state_ref
        everything = StateReturn(
            sale=sale,
            returned=(StateReturnLine(package_label=rig.label, units=2, refund_cents=2000),),
            returned_at=NOW,
        )
        entry = rig.entry("return", "return-FR-1-1", everything)
        assert await rig.lost(entry) == "found"
        assert await rig.quantity() == start
        if rig.system.startswith("metrc"):
            # and were it resent anyway, the send looks first: the archived receipt means done
            assert (await rig.sender.send(entry)).outcome == "sent"
            state = await rig.admin.state()
            [receipt] = [r for r in state["receipts"] if r["external_number"] == "FR-1"]
            assert receipt["archived_date"] is not None


async def test_a_2022_medical_sale_carries_the_card_key_from_the_patient_lookup(tmp_path: Any) -> None:
    """[I] openthc/pos Commit.php: a 2022 medical sale sends ``PatientCardKey``, the lookup's ``CardKey``."""
    card_id, card_key, _, _ = demo.BIOTRACK_CARDS[0]
    with trio.fail_after(20):
        async with running_sandbox(tmp_path) as sandbox, SandboxAdmin(sandbox.url) as admin:
            client = BioTrackRestClient(
                f"{sandbox.url}/biotrack",
                demo.BIOTRACK_UBI,
                demo.BIOTRACK_USERNAME,
                demo.BIOTRACK_PASSWORD,
                demo.BIOTRACK_LICENSE,
                flavour="2022",
            )
            sender = BioTrackRestSender(client, demo.BIOTRACK_LICENSE, {})
            rig = Rig("biotrack-2022", sender, admin, demo.BIOTRACK_INVENTORY[0][0], "Each")
            medical = msgspec.structs.replace(
                rig.sale("MED-1", 1), customer_type="Patient", patient_license=card_id
            )
            sent = await sender.send(rig.entry("sale", "MED-1", medical))
            assert sent.outcome == "sent", sent
            unknown = msgspec.structs.replace(medical, patient_license="NM-NOBODY")
            refused = await sender.send(rig.entry("sale", "MED-2", unknown))
            assert refused.outcome == "rejected" and "card" in refused.error
            await sender.aclose()
            [sale] = [s for s in (await admin.state())["biotrack_sales"] if s["request_id"] == "MED-1"]
            assert (sale["sale_type"], sale["card_id"]) == ("MEDICAL", card_id)
            assert card_key  # the sandbox matched the key back to its card
