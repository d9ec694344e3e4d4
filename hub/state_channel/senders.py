"""How one outbox entry travels to one state system: a send, and the lookup that precedes any resend.

The outbox core (``hub.domain.outbox``) decides; this module only speaks Metrc or BioTrack and turns every
answer into an ``Attempt`` (an outcome from the core's vocabulary, plus the state's words and its id).
One entry per request: a 400 row error then names exactly the entry that caused it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from drivers.biotrack import BioTrack2014Client, BioTrackRestClient
from drivers.metrc import MetrcClient
from drivers.state_errors import (
    OutcomeUnknown,
    RateLimited,
    RowError,
    StateAuthError,
    StateError,
    StateRejected,
    StateUnavailable,
)
from hub.domain.outbox import OutboxEntry, Outcome
from hub.domain.state_payloads import (
    MG_PER_UNIT,
    PayloadError,
    StateAdjustment,
    StateReturn,
    StateSale,
    StateVoid,
    biotrack_2014_dispense,
    biotrack_2014_refund_items,
    biotrack_adjustment,
    biotrack_rest_dispense,
    metrc_adjustment,
    metrc_receipt,
    metrc_receipt_update,
    metrc_transaction,
    sale_after_return,
    state_quantity,
)
from hub.state_channel.biotrack import rest_endpoint
from hub.store.env import decode

PAYLOAD_TYPES: dict[str, type[Any]] = {
    "sale": StateSale,
    "void": StateVoid,
    "return": StateReturn,
    "adjustment": StateAdjustment,
}


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    error: str = ""
    code: str = ""
    retry_after: float | None = None
    state_ref: str = ""


def attempt_from(exc: StateError) -> Attempt:
    """The one place a state error becomes an outbox outcome."""
    if isinstance(exc, StateRejected):
        rows = exc.for_row(0) or exc.row_errors
        text = "; ".join(r.message for r in rows) or exc.message
        return Attempt("rejected", text, exc.code)
    if isinstance(exc, RateLimited):
        return Attempt("rate_limited", exc.message, exc.code, retry_after=exc.retry_after)
    if isinstance(exc, StateAuthError):
        return Attempt("auth", exc.message, exc.code)
    if isinstance(exc, OutcomeUnknown):
        return Attempt("outcome_unknown", exc.message, exc.code)
    if isinstance(exc, StateUnavailable):
        return Attempt("unavailable", exc.message, exc.code)
    return Attempt("unavailable", str(exc), exc.code)


class Sender(Protocol):
    system: str

    async def send(self, entry: OutboxEntry) -> Attempt: ...

    async def lookup(self, entry: OutboxEntry) -> Attempt: ...

    async def aclose(self) -> None: ...


async def guarded(coro: Any) -> Attempt:
    try:
        result = await coro
    except StateError as exc:
        return attempt_from(exc)
    except PayloadError as exc:
        # the hub built something the state can never take: a person must look at it
        return Attempt("rejected", f"the hub could not build this report: {exc}", "payload_error")
    return result if isinstance(result, Attempt) else Attempt("sent")


# -- what the state is asked before anything is sent again -------------------------------------------------
#
# An entry whose outcome is unknown (an answer lost, a crash mid-send, a dead letter a person retries) is
# looked up before it is sent again: what the state already has decides what is sent. This table is the
# whole of that rule, one row per system and outbox kind; each sender's ``_lookup_<kind>`` does its row, and
# the tests hold every row to "stored, but the answer lost".
LOOKUPS: dict[str, dict[str, str]] = {
    "metrc": {
        "sale": "GET /sales/v2/receipts/external/{n}: a receipt, live or archived, means it is there: sent",
        "void": "GET /sales/v2/receipts/external/{n}: archived and none live: sent; live: send the DELETE",
        "return": "GET /sales/v2/receipts/external/{n}: partial return: the live receipt's lines equal the sale "
        "minus every return so far: sent, else send the PUT (it sets the whole receipt); full return "
        "(DELETE): archived and none live: sent, live: send",
        "adjustment": "GET /packages/v2/{label}: the quantity after the change: sent; the quantity before: "
        "send; anything else: a person compares (dead letter)",
    },
    "biotrack-2014": {
        kind: "nonce_replay with the entry's nonce ([I] openthc/cre-adapter): an answer: sent (a sale takes "
        "its transactionid from it); no such nonce: send, with the same nonce"
        for kind in ("sale", "void", "return", "adjustment")
    },
    "biotrack-rest": {
        "sale": "GET /v1/sale?RequestID=…: the sale: sent (its TransactionID)",
        "void": "the sale by its RequestID: Deleted (2024) or Voided: sent; else send",
        "return": "the sale by its RequestID: refunded per barcode minus what earlier returns refunded equals "
        "this return: sent; equals nothing: send; anything else: a person (dead letter)",
        "adjustment": "none: the adjustment sets the package's new quantity, so sending it again is harmless",
    },
}


class MetrcSender:
    """Sales, voids, returns and adjustments to one Metrc facility."""

    system = "metrc"

    def __init__(self, client: Any) -> None:
        self.client = client  # drivers.metrc.MetrcClient

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, entry: OutboxEntry) -> Attempt:
        return await guarded(self._send(entry))

    async def lookup(self, entry: OutboxEntry) -> Attempt:
        body = decode(entry.payload, PAYLOAD_TYPES[entry.kind])
        return await guarded(getattr(self, f"_lookup_{entry.kind}")(body))

    async def _receipts(self, external: str) -> tuple[Any, Any]:
        """(the live receipt or None, an archived one or None) for an external receipt number."""
        receipts = await self.client.receipts_by_external_number(external)
        live = [r for r in receipts if not r.archived_date]
        archived = [r for r in receipts if r.archived_date]
        return (live[0] if live else None), (archived[0] if archived else None)

    async def _send(self, entry: OutboxEntry) -> Attempt:
        body = decode(entry.payload, PAYLOAD_TYPES[entry.kind])
        if entry.kind == "sale":
            ids = await self.client.post_receipts([metrc_receipt(body)])
            return Attempt("sent", state_ref=str(ids[0]) if ids else "")
        if entry.kind == "void":
            return await self._delete(body.external_receipt_number, "void_without_sale")
        if entry.kind == "return":
            remaining = sale_after_return(body)
            if remaining is None:  # everything came back: the receipt is voided
                return await self._delete(body.sale.external_receipt_number, "return_without_sale")
            receipt, _ = await self._receipts(body.sale.external_receipt_number)
            if receipt is None:
                return Attempt(
                    "rejected", "the returned sale's receipt is not live in Metrc", "return_without_sale"
                )
            # the PUT replaces the receipt: the sale minus *every* return so far (``earlier`` + this one)
            await self.client.put_receipts([metrc_receipt_update(remaining, receipt.id)])
            return Attempt("sent", state_ref=str(receipt.id))
        if entry.kind == "adjustment":
            ids = await self.client.adjust_packages([metrc_adjustment(body)])
            return Attempt("sent", state_ref=str(ids[0]) if ids else "")
        return Attempt("rejected", f"unknown entry kind {entry.kind!r}", "unknown_kind")

    async def _delete(self, external: str, code: str) -> Attempt:
        """Archive the receipt; what is already at Metrc decides (a lost answer to an earlier DELETE)."""
        receipt, archived = await self._receipts(external)
        if receipt is None:
            if archived is not None:
                return Attempt("sent", state_ref=str(archived.id))
            return Attempt(
                "rejected", f"Receipt {external} is not in Metrc; its sale must reach Metrc first.", code
            )
        await self.client.delete_receipt(receipt.id)
        return Attempt("sent", state_ref=str(receipt.id))

    # -- LOOKUPS["metrc"] ------------------------------------------------------------------------------------

    async def _lookup_sale(self, sale: StateSale) -> Attempt:
        receipt, archived = await self._receipts(sale.external_receipt_number)
        found = receipt or archived
        return Attempt("found", state_ref=str(found.id)) if found is not None else Attempt("not_found")

    async def _lookup_void(self, void: StateVoid) -> Attempt:
        receipt, archived = await self._receipts(void.external_receipt_number)
        if receipt is None and archived is not None:
            return Attempt("found", state_ref=str(archived.id))
        return Attempt("not_found")

    async def _lookup_return(self, ret: StateReturn) -> Attempt:
        receipt, archived = await self._receipts(ret.sale.external_receipt_number)
        remaining = sale_after_return(ret)
        if remaining is None:  # a full return is a DELETE
            if receipt is None and archived is not None:
                return Attempt("found", state_ref=str(archived.id))
            return Attempt("not_found")
        if receipt is not None and receipt_lines(receipt) == expected_lines(remaining):
            return Attempt("found", state_ref=str(receipt.id))
        return Attempt("not_found")

    async def _lookup_adjustment(self, adj: StateAdjustment) -> Attempt:
        # Metrc has no idempotency key for adjustments: compare the package's quantity with before/after.
        pkg = await self.client.package(adj.package_label)
        if pkg is None:
            return Attempt("rejected", f"Package {adj.package_label} is not in Metrc.", "state_rejected")
        unit = adj.unit_of_measure
        after = (
            state_quantity(unit, 0, adj.resulting_units)
            if unit == "Each"
            else state_quantity(unit, adj.resulting_mg, 0)
        )
        delta = float(adj.delta_units) if unit == "Each" else adj.delta_mg / _mg_per(unit)
        if abs(pkg.quantity - after) < 1e-6:
            return Attempt("found", state_ref=str(pkg.id))
        if abs(pkg.quantity - (after - delta)) < 1e-6:
            return Attempt("not_found")
        return Attempt(
            "rejected",
            f"Cannot tell whether the adjustment of {adj.package_label} landed: Metrc shows "
            f"{pkg.quantity:g}, expected {after - delta:g} before or {after:g} after. Check it in Metrc.",
            "adjustment_unclear",
        )


def expected_lines(sale: StateSale) -> list[tuple[str, float, float]]:
    """(label, quantity, total amount) of each line as the hub sends it to Metrc."""
    return sorted(
        (t["PackageLabel"], round(float(t["Quantity"]), 6), round(float(t["TotalAmount"]), 2))
        for t in (metrc_transaction(line) for line in sale.lines)
    )


def receipt_lines(receipt: Any) -> list[tuple[str, float, float]]:
    """The same, as a Metrc receipt shows them."""
    return sorted(
        (t.package_label or "", round(float(t.quantity), 6), round(float(t.total_amount), 2))
        for t in receipt.transactions or []
    )


def _mg_per(unit: str) -> float:
    return float(MG_PER_UNIT.get(unit, 1000))


class BioTrack2014Sender:
    """The 2014 JSON-RPC: the nonce is the idempotency key. A request whose answer was lost is asked after
    with ``nonce_replay`` (a separate action, as OpenTHC's client has it), never by resending the request."""

    system = "biotrack-2014"

    def __init__(self, client: Any, refs: dict[str, str]) -> None:
        self.client = client
        self.refs = refs  # external receipt number -> BioTrack transaction id (kept by the actor)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, entry: OutboxEntry) -> Attempt:
        return await guarded(self._send(entry))

    async def lookup(self, entry: OutboxEntry) -> Attempt:
        return await guarded(self._lookup(entry))

    async def _lookup(self, entry: OutboxEntry) -> Attempt:
        # LOOKUPS["biotrack-2014"]: the same question for every kind
        reply = await self.client.nonce_replay(entry.idempotency_key)
        if reply is None:
            return Attempt("not_found")
        tid = reply.get("transactionid")
        if tid is None and entry.kind in ("void", "return"):
            body = decode(entry.payload, PAYLOAD_TYPES[entry.kind])
            sale = body.external_receipt_number if entry.kind == "void" else body.sale.external_receipt_number
            tid = self.refs.get(sale)
        return Attempt("found", state_ref=str(tid or ""))

    async def _send(self, entry: OutboxEntry) -> Attempt:
        body = decode(entry.payload, PAYLOAD_TYPES[entry.kind])
        nonce = entry.idempotency_key
        if entry.kind == "sale":
            tid = await self.client.sale_dispense(biotrack_2014_dispense(body), nonce=nonce)
            return Attempt("sent", state_ref=tid)
        if entry.kind == "void":
            tid = self.refs.get(body.external_receipt_number)
            if not tid:
                return Attempt(
                    "rejected", "the voided sale has no BioTrack transaction id", "void_without_sale"
                )
            await self.client.sale_void(tid, nonce=nonce)
            return Attempt("sent", state_ref=tid)
        if entry.kind == "return":
            tid = self.refs.get(body.sale.external_receipt_number)
            if not tid:
                return Attempt(
                    "rejected", "the returned sale has no BioTrack transaction id", "return_without_sale"
                )
            await self.client.sale_refund(tid, biotrack_2014_refund_items(body), nonce=nonce)
            return Attempt("sent", state_ref=tid)
        if entry.kind == "adjustment":
            await self.client.inventory_adjust(biotrack_adjustment(body), nonce=nonce)
            return Attempt("sent")
        return Attempt("rejected", f"unknown entry kind {entry.kind!r}", "unknown_kind")


class BioTrackRestSender:
    """The 2022/2024 REST: ``RequestID`` is the idempotency key of a sale and can be looked up; a void or a
    refund is looked up on the sale it belongs to (found by the sale's ``RequestID``)."""

    system = "biotrack-rest"

    def __init__(
        self,
        client: Any,
        location_license: str,
        refs: dict[str, str],
        returned_before: Callable[[OutboxEntry, str], dict[str, float]] | None = None,
    ) -> None:
        self.client = client
        self.location_license = location_license
        self.refs = refs
        # what earlier returns of the same sale already refunded, per barcode, for returns written before
        # ``StateReturn.earlier`` existed (read from the outbox)
        self.returned_before = returned_before

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, entry: OutboxEntry) -> Attempt:
        return await guarded(self._send(entry))

    async def lookup(self, entry: OutboxEntry) -> Attempt:
        return await guarded(self._lookup(entry))

    async def _sale(self, request_id: str) -> Any:
        found = await self.client.sales_by_request_id(request_id)
        return found[0] if found else None

    async def _lookup(self, entry: OutboxEntry) -> Attempt:
        # LOOKUPS["biotrack-rest"]
        body = decode(entry.payload, PAYLOAD_TYPES[entry.kind])
        if entry.kind == "sale":
            sale = await self._sale(entry.idempotency_key)
            if sale is not None:
                return Attempt("found", state_ref=str(sale.transaction_id))
            return Attempt("not_found")
        if entry.kind == "void":
            sale = await self._sale(body.external_receipt_number)
            if sale is not None and sale.is_voided:
                return Attempt("found", state_ref=str(sale.transaction_id))
            return Attempt("not_found")
        if entry.kind == "return":
            return await self._lookup_return(entry, body)
        return Attempt("not_found")  # an adjustment sets the new quantity: sending it again is harmless

    async def _lookup_return(self, entry: OutboxEntry, ret: StateReturn) -> Attempt:
        # A refund has no idempotency key: compare what the state has refunded on the sale with what the
        # hub's earlier returns of it refunded (they went first: entries go in order per package).
        sale = await self._sale(ret.sale.external_receipt_number)
        if sale is None:
            return Attempt("not_found")
        state = sale.refunded_quantities()
        if ret.earlier:
            earlier = msgspec.structs.replace(ret, returned=ret.earlier)
            before: dict[str, float] = {}
            for i in _rest_refund_items(earlier):
                before[i["Barcode"]] = before.get(i["Barcode"], 0.0) + i["Quantity"]
        elif self.returned_before:
            before = self.returned_before(entry, ret.sale.external_receipt_number)
        else:
            before = {}
        now = {i["Barcode"]: i["Quantity"] for i in _rest_refund_items(ret)}
        if all(abs(state.get(b, 0.0) - before.get(b, 0.0) - q) < 1e-6 for b, q in now.items()):
            return Attempt("found", state_ref=str(sale.transaction_id))
        if all(abs(state.get(b, 0.0) - before.get(b, 0.0)) < 1e-6 for b in now):
            return Attempt("not_found")
        return Attempt(
            "rejected",
            f"BioTrack shows refunds on transaction {sale.transaction_id} that the hub cannot match "
            f"with this return ({state} refunded, {before} before it); check it in BioTrack.",
            "return_unclear",
        )

    async def _card_key(self, sale: StateSale) -> str | None:
        """2022: a medical sale carries the ``CardKey`` the patient lookup answers (``PatientCardKey``)."""
        if sale.customer_type == "Consumer" or getattr(self.client, "flavour", "2022") != "2022":
            return None
        card = await self.client.patient_lookup(sale.patient_license or "")
        if card is None or not card.card_key:
            raise StateRejected(
                "BioTrack does not know the patient's card; the sale cannot be reported as medical.",
                [RowError(0, "card not found")],
                system="biotrack",
            )
        return str(card.card_key)

    async def _send(self, entry: OutboxEntry) -> Attempt:
        body = decode(entry.payload, PAYLOAD_TYPES[entry.kind])
        if entry.kind == "sale":
            tid = await self.client.dispense(
                biotrack_rest_dispense(
                    body,
                    location_license=self.location_license,
                    request_id=entry.idempotency_key,
                    flavour=getattr(self.client, "flavour", "2022"),
                    card_key=await self._card_key(body),
                )
            )
            return Attempt("sent", state_ref="" if tid is None else str(tid))
        if entry.kind == "void":
            tid = self.refs.get(body.external_receipt_number)
            if not tid:
                return Attempt(
                    "rejected", "the voided sale has no BioTrack transaction id", "void_without_sale"
                )
            await self.client.void_sale(int(tid))
            return Attempt("sent", state_ref=tid)
        if entry.kind == "return":
            tid = self.refs.get(body.sale.external_receipt_number)
            if not tid:
                return Attempt(
                    "rejected", "the returned sale has no BioTrack transaction id", "return_without_sale"
                )
            await self.client.refund_sale(int(tid), _rest_refund_items(body))
            return Attempt("sent", state_ref=tid)
        if entry.kind == "adjustment":
            adj = biotrack_adjustment(body)
            await self.client.inventory_adjust(
                [
                    {
                        "Barcode": adj["barcodeid"],
                        "Quantity": adj["quantity"],
                        "Type": adj["type"],
                        "Reason": adj["reason"],
                    }
                ]
            )
            return Attempt("sent")
        return Attempt("rejected", f"unknown entry kind {entry.kind!r}", "unknown_kind")


def _rest_refund_items(ret: StateReturn) -> list[dict[str, Any]]:
    """``POST /v1/sale/{id}/refund`` items: the 2014 refund lines with REST names and JSON numbers."""
    return [
        {"Barcode": i["barcodeid"], "Quantity": float(i["quantity"]), "Price": float(i["price"])}
        for i in biotrack_2014_refund_items(ret)
    ]


def make_sender(
    settings: Any,
    *,
    facility: str,
    refs: dict[str, str],
    returned_before: Callable[[OutboxEntry, str], dict[str, float]] | None = None,
) -> Sender | None:
    """A sender for the configured state system (``StateSystemSection``); None when there is none."""
    import httpx

    timeout = httpx.Timeout(settings.timeout_seconds)
    if settings.kind == "metrc":
        return MetrcSender(
            MetrcClient(settings.base_url, settings.vendor_key, settings.user_key, facility, timeout=timeout)
        )
    if settings.kind == "biotrack-2014":
        client = BioTrack2014Client(
            settings.base_url, facility, settings.username, settings.password, timeout=timeout
        )
        return BioTrack2014Sender(client, refs)
    if settings.kind == "biotrack-rest":
        return BioTrackRestSender(
            biotrack_rest_client(settings, facility), facility, refs, returned_before=returned_before
        )
    return None


def biotrack_rest_client(settings: Any, facility: str) -> Any:
    """A ``BioTrackRestClient`` for ``[state_system]`` (``biotrack_api`` says 2022 or 2024)."""
    import httpx

    url, flavour = rest_endpoint(settings.base_url, settings.biotrack_api)
    return BioTrackRestClient(
        url,
        settings.ubi,
        settings.username,
        settings.password,
        location_license=facility,
        flavour=flavour,
        timeout=httpx.Timeout(settings.timeout_seconds),
    )
