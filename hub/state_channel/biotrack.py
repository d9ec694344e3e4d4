"""BioTrack REST as the rest of the hub reads it: the same questions the Metrc client answers, asked of
``drivers.biotrack.BioTrackRestClient``.

- ``patient_status(number)``: the check-in's registry question (``POST /v1/patient/lookup``), with the
  card's ``CardLimit`` turned into the ounces the sale's ``registry_lookup`` expects from Metrc;
- ``packages_active()``: the state's inventory, for pulls and reconciliation;
- ``manifests()`` and ``receive_transfer``: inbound transfers (2024 flavour), received through the API.

Which REST flavour a store speaks is part of its ``[state_system] base_url``: a ``#2024`` fragment selects
the 2024 routes (``/v1/user/login``, ``/v1/sale``, transfers); without one it is 2022 (New Mexico Trace v3).
A fragment never leaves the hub (HTTP does not send it), so the URL stays the state's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from drivers.state_errors import OutcomeUnknown, StateRejected, StateUnavailable

Flavour = Literal["2022", "2024"]
PATIENT_CACHE_SECONDS = 60.0  # as the Metrc client: a check-in and the sale that follows ask once
# The sale converts ounces back to mg with Metrc's avoirdupois ounce; using the same constant here makes the
# round trip exact (CardLimit grams -> ounces -> the same grams).
OUNCE_G = 28.349523125
# New Mexico's medical "unit" (the jurisdiction BioTrack REST serves): 1 g of dried cannabis, or 200 mg of
# THC in a cannabis-derived product. CardLimit counts remaining units, so the same figure caps flower at
# CardLimit grams and THC at CardLimit x 200 mg; both draw on one pool, which the hub's own rules enforce.
THC_MG_PER_UNIT = 200.0
UNIT_NAMES = {"g": "Grams", "ea": "Each", "mg": "Milligrams", "kg": "Kilograms"}


def rest_endpoint(base_url: str, configured: str = "2022") -> tuple[str, Flavour]:
    """The URL and API flavour: ``[state_system] biotrack_api``; a ``#2024`` fragment on the URL (the
    earlier way to say it) still wins."""
    url, _, fragment = base_url.partition("#")
    flavour = fragment.strip().lower().removeprefix("v") or configured
    if flavour not in ("2022", "2024"):
        raise ValueError(f"BioTrack REST flavour {fragment!r} is not 2022 or 2024 (base_url {base_url!r})")
    return url, "2024" if flavour == "2024" else "2022"


def unit_name(uom: str | None) -> str:
    """BioTrack's ``g``/``ea`` as the unit names the hub compares in (Metrc's)."""
    return UNIT_NAMES.get((uom or "").lower(), "Each")


@dataclass(frozen=True)
class CardStatusAnswer:
    """A BioTrack card as the check-in reads a Metrc patient status."""

    card_id: str
    active: bool
    card_limit: float  # remaining units (grams of flower) as BioTrack says it
    flower_ounces_available: float
    thc_ounces_available: float


def card_answer(card: Any, today: date) -> CardStatusAnswer:
    exp = card.card_expiration
    expired = exp is not None and exp.as_date() < today
    limit = max(0.0, float(card.card_limit))
    return CardStatusAnswer(
        card_id=card.card_id or "",
        active=bool(card.card_active) and not expired,
        card_limit=limit,
        flower_ounces_available=limit / OUNCE_G,
        thc_ounces_available=limit * THC_MG_PER_UNIT / 1000 / OUNCE_G,
    )


@dataclass(frozen=True)
class AdjustReason:
    name: str
    requires_note: bool = False


# BioTrack's own adjustment types (``/v1/inventory/adjustment/type``), by the names the payload core maps
# (``BIOTRACK_ADJUST_TYPE``): a manager picks one of these, never a Metrc-only reason
BIOTRACK_REASONS = (
    "Inventory Audit",
    "Theft",
    "Seizure by Law Enforcement",
    "Correction",
    "Moisture Loss",
    "Depletion",
)


@dataclass(frozen=True)
class StatePackage:
    """The fields of a Metrc package that pulls and reconciliation read."""

    label: str
    quantity: float
    unit_of_measure_name: str
    last_modified: str = ""


class BioTrackRestReader:
    """The pull side of one BioTrack REST location (its own client, its own session)."""

    system = "biotrack-rest"

    def __init__(self, client: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client  # drivers.biotrack.BioTrackRestClient
        self.flavour: Flavour = client.flavour
        self._clock = clock
        self._cards: dict[str, tuple[float, CardStatusAnswer | None]] = {}

    @property
    def receives_transfers(self) -> bool:
        # only the 2024 API has inbound transfers and their receive call (state-systems.md 2.3)
        return self.flavour == "2024"

    async def aclose(self) -> None:
        await self.client.aclose()

    async def patient_status(self, number: str, *, fresh: bool = False) -> CardStatusAnswer | None:
        now = self._clock()
        cached = self._cards.get(number)
        if cached is not None and not fresh and now - cached[0] < PATIENT_CACHE_SECONDS:
            return cached[1]
        card = await self.client.patient_lookup(number)
        answer = None if card is None else card_answer(card, datetime.now(UTC).date())
        self._cards[number] = (now, answer)
        return answer

    async def packages_active(self, **_window: Any) -> list[StatePackage]:
        """The location's active inventory. BioTrack REST has no last-modified window: always all of it."""
        rows = await self.client.inventory()
        return [
            StatePackage(label=r.barcode, quantity=float(r.quantity), unit_of_measure_name=unit_name(r.uom))
            for r in rows
            if r.active
        ]

    async def adjust_reasons(self) -> list[AdjustReason]:
        return [AdjustReason(name) for name in BIOTRACK_REASONS]

    async def inbound_transfers(self) -> list[Any]:
        if not self.receives_transfers:
            return []
        return await self.client.inbound_transfers()  # type: ignore[no-any-return]

    async def receive_transfer(self, transfer_id: int, items: list[dict[str, Any]]) -> str:
        """Receive once: a lost answer or "already received" is checked against the state's transfer list.
        Returns "received" when this call did it, "already" when the state had it already."""
        try:
            await self.client.receive_transfer(transfer_id, items)
            return "received"
        except (OutcomeUnknown, StateRejected) as exc:
            if isinstance(exc, StateRejected) and "already" not in exc.message.lower():
                raise
            try:
                transfers = await self.client.inbound_transfers()
            except StateUnavailable:
                raise exc from None
            if any(t.transfer_id == transfer_id and t.received for t in transfers):
                return "already"
            raise
