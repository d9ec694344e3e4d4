"""BioTrack clients: the 2014 JSON-RPC (``serverjson.asp``) and the 2022/2024 REST shapes.

Both raise only ``drivers.state_errors`` and read every answer through ``drivers.state_http``'s one
case-insensitive boundary (2022 answers ``Session``, 2024 ``session``). Exactly once: the 2014 API takes a
``nonce`` per request and has a separate ``nonce_replay`` action to fetch the result of an earlier request;
the REST API takes a ``RequestID`` and a sale can be looked up by it before resending.

What is confirmed and what is inferred (``reference/state-api-documented-shapes.md`` Part T): BioTrack has
published almost nothing. Shapes marked [I] below come only from OpenTHC's open-source adapters and mocks
(``openthc/cre-adapter``, ``openthc/bunk``, ``openthc/pos``), not from BioTrack.

Payloads are built by ``hub.domain.state_payloads``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import httpx
import msgspec

from drivers.state_errors import (
    OutcomeUnknown,
    RowError,
    StateAuthError,
    StateProtocolError,
    StateRejected,
    StateUnavailable,
)
from drivers.state_http import (
    DEFAULT_TIMEOUT,
    Wire,
    convert,
    decode,
    endpoint_of,
    fold,
    raise_for_status,
    read_json,
    send,
)

SYSTEM = "biotrack"


class BioTrack2014Client:
    """One licence's session on a ``serverjson.asp`` endpoint; logs in on first use and again on expiry."""

    def __init__(
        self,
        url: str,
        license_number: str,
        username: str,
        password: str,
        *,
        training: bool = False,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.license_number = license_number
        self._username = username
        self._password = password
        self._training = training
        self._session: str | None = None
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def __aenter__(self) -> BioTrack2014Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, body: dict[str, Any], *, is_write: bool) -> dict[str, Any]:
        try:
            response = await send(
                self._http,
                "POST",
                self.url,
                system=SYSTEM,
                content=msgspec.json.encode(body),
                headers={"content-type": "text/JSON"},
            )
        except OutcomeUnknown as exc:
            # Every JSON-RPC call is a POST; a read (login, sync) that lost its answer is just unavailable.
            if not is_write:
                raise StateUnavailable(exc.message, system=SYSTEM) from exc
            raise
        raise_for_status(response, system=SYSTEM, is_write=is_write)
        # the 2014 envelope is lower-case already ([I]); its rows go to the caller as sent
        reply = read_json(response, system=SYSTEM)
        if not isinstance(reply, dict):
            raise StateProtocolError(
                f"the answer to {self.url} is not a JSON object", endpoint=self.url, system=SYSTEM
            )
        return reply

    async def login(self) -> None:
        reply = await self._send(
            {
                "API": "4.0",
                "action": "login",
                "license_number": self.license_number,
                "username": self._username,
                "password": self._password,
                **({"training": 1} if self._training else {}),
            },
            is_write=False,
        )
        if reply.get("success") != 1 or not reply.get("sessionid"):
            raise StateAuthError(f"BioTrack login refused: {reply.get('error', 'no session')}", system=SYSTEM)
        self._session = str(reply["sessionid"])

    async def call(
        self,
        action: str,
        fields: dict[str, Any] | None = None,
        *,
        nonce: str | None = None,
        is_write: bool = True,
    ) -> dict[str, Any]:
        """One action; logs in first if needed and once more if the session expired (not applied then)."""
        for attempt in (1, 2):
            if self._session is None:
                await self.login()
            body: dict[str, Any] = {
                "API": "4.0",
                "action": action,
                "sessionid": self._session,
                **(fields or {}),
            }
            if nonce is not None:
                body["nonce"] = nonce
            if self._training:
                body["training"] = 1
            reply = await self._send(body, is_write=is_write)
            if reply.get("success") == 1:
                return reply
            error = str(reply.get("error", "unknown error"))
            if _session_expired(error) and attempt == 1:
                self._session = None
                continue
            if _session_expired(error):
                raise StateAuthError(f"BioTrack session refused: {error}", system=SYSTEM)
            raise StateRejected(f"{action}: {error}", [RowError(0, error)], system=SYSTEM)
        raise AssertionError("unreachable")  # pragma: no cover

    async def nonce_replay(self, nonce: str) -> dict[str, Any] | None:
        """The state's answer to an earlier request with ``nonce``; None when it never saw that nonce.

        [I] ``nonce_replay`` exists in ``openthc/cre-adapter`` ``lib/BioTrack.php`` with only
        ``{"action": "nonce_replay", "nonce": …}``; its answer is shown nowhere. We read it as the original
        request's answer (``success: 1`` and, for a sale, its ``transactionid``), and ``success: 0`` as
        "no such nonce" — the reading its name and the per-request nonce suggest, not a confirmed one.
        """
        try:
            return await self.call("nonce_replay", {"nonce": nonce}, is_write=False)
        except StateRejected:
            return None

    async def sale_dispense(self, fields: dict[str, Any], *, nonce: str) -> str:
        """Record a sale (fields from ``biotrack_2014_dispense``); returns BioTrack's transaction id."""
        reply = await self.call("sale_dispense", fields, nonce=nonce)
        return str(reply["transactionid"])

    async def sale_void(self, transaction_id: str, *, nonce: str | None = None) -> None:
        await self.call("sale_void", {"transactionid": transaction_id}, nonce=nonce)

    async def sale_refund(
        self, transaction_id: str, items: list[dict[str, Any]], *, nonce: str | None = None
    ) -> None:
        await self.call("sale_refund", {"transactionid": transaction_id, "data": items}, nonce=nonce)

    async def inventory_adjust(
        self, data: dict[str, Any] | list[dict[str, Any]], *, nonce: str | None = None
    ) -> None:
        await self.call("inventory_adjust", {"data": data}, nonce=nonce)

    async def sync_check(self) -> int:
        """The state's current transaction number, to pull changes since a known one."""
        reply = await self.call("sync_check", {"download": 0}, is_write=False)
        return int(reply.get("transactionid", 0))

    async def sync_inventory(self, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
        return (await self._sync("inventory", start, end)).get("inventory", [])

    async def sync_sale(self, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
        return (await self._sync("sale", start, end)).get("sale", [])

    async def _sync(self, obj: str, start: int, end: int | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"download": 1, "transaction_start": start}
        if end is not None:
            fields["transaction_end"] = end
        return await self.call(f"sync_{obj}", fields, is_write=False)


def _session_expired(error: str) -> bool:
    lowered = error.lower()
    return "session" in lowered and ("expired" in lowered or "invalid" in lowered)


class CardExpiration(Wire):
    # [I] strings in the live-looking sample of ``openthc/bunk`` (``"Year": "2023", "Month": "09"``)
    year: int | str
    month: int | str
    day: int | str

    def as_date(self) -> date:
        return date(int(self.year), int(self.month), int(self.day))


class CardStatus(Wire):
    """``POST /v1/patient/lookup`` (2022, [I] ``openthc/bunk`` ``lib/Module/BioTrack2022.php``): ``card_limit``
    is the patient's remaining allotment (grams); ``card_key`` is what a medical sale sends as
    ``PatientCardKey``. An empty ``CardID`` means not found (``openthc/pos`` ``Open.php``)."""

    card_active: bool
    card_expiration: CardExpiration | None = None
    card_limit: float = 0.0
    privileges: str | list[str] | None = None  # [I] one string, e.g. "Qualified Patient (QP)"
    card_id: str | None = None
    card_key: str | None = None
    sessiontime: int | None = None


class _Session(Wire):
    session: str = ""  # 2022 ``{"Session": …}``; 2024 ``{"session": …}`` ([I] mock ``/v1/user/login``)


class SaleItem(Wire):
    barcode: str
    quantity: float = 0.0
    price: float = 0.0


class RestSale(Wire):
    """A sale as the REST API shows it. 2024 ([I] ``openthc/bunk`` ``lib/BioTrack2024/Sale*.php``): ``ID``,
    ``TransactionID``, ``Deleted`` for a voided sale, ``Item[]``; refunds ([I]) as ``Refund[]`` of sale-like
    objects. 2022 has no documented sale read; the sandbox's answer (``Voided``, ``Items``, ``Refunded``) is
    read too."""

    transaction_id: int
    request_id: str | None = None
    external_id: str | None = None
    deleted: bool = False
    voided: bool = False
    item: list[SaleItem] | None = None
    items: list[SaleItem] | None = None
    refund: list[RestSale] | None = None
    refunded: list[SaleItem] | None = None

    @property
    def is_voided(self) -> bool:
        return self.deleted or self.voided

    def refunded_quantities(self) -> dict[str, float]:
        """Barcode -> quantity refunded so far, in whichever shape the state gave it."""
        out: dict[str, float] = {}
        lines = list(self.refunded or [])
        for refund in self.refund or []:
            lines += refund.item or refund.items or []
        for line in lines:
            out[line.barcode] = out.get(line.barcode, 0.0) + abs(line.quantity)
        return out


class Dispensed(Wire):
    """What a recorded sale answers. 2022 ([I] mock): ``{"TransactionID", "RequestID", "ExternalID"}``.
    2024 ([I] mock): ``{"Inventory": […], "Sale": [<sale>], "SessionTime", "TransactionID"}``, where the
    sale's own id is ``Sale[0].TransactionID`` (the top-level one is read only when there is no ``Sale``)."""

    transaction_id: int | None = None
    sale: list[RestSale] | None = None

    @property
    def sale_transaction_id(self) -> int | None:
        if self.sale:
            return self.sale[0].transaction_id
        return self.transaction_id


class InventoryRow(Wire):
    """A row of the location's inventory ([I]: the sandbox's shape; no public source shows one)."""

    barcode: str
    product_name: str | None = None
    quantity: float = 0.0
    uom: str | None = None
    active: bool = True


class InboundItem(Wire):
    barcode: str
    product_name: str | None = None
    category: str | None = None
    quantity: float = 0.0
    uom: str | None = None
    received_quantity: float | None = None
    status: str = ""


class InboundTransfer(Wire):
    """An inbound transfer (2024; [I]: the sandbox's shape, no public source shows one)."""

    transfer_id: int
    manifest: str | None = None
    from_license: str = ""
    from_name: str = ""
    estimated_arrival: str = ""
    received: bool = False
    item: list[InboundItem] = []


def listed(raw: Any, key: str) -> list[Any]:
    """A list answer: 2022 (sandbox) a bare array; 2024 ([I] mock) an object holding it, e.g.
    ``GET /v1/sale`` -> ``{"NextCursor": 0, "NextTransactionID": 0, "Sale": [...]}``."""
    if isinstance(raw, list):
        return raw
    if isinstance(raw, dict):
        for k, v in raw.items():
            if isinstance(k, str) and fold(k) == fold(key) and isinstance(v, list):
                return v
        lists = [v for v in raw.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return []


class BioTrackRestClient:
    """BioTrack REST: 2022 (New Mexico Trace v3) or 2024 shapes. ``base_url`` is the API root."""

    def __init__(
        self,
        base_url: str,
        ubi: str,
        username: str,
        password: str,
        location_license: str,
        *,
        flavour: Literal["2022", "2024"] = "2022",
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.location_license = location_license
        self.flavour = flavour
        self._credentials = {"UBI": ubi, "Username": username, "Password": password}
        self._token: str | None = None
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    async def __aenter__(self) -> BioTrackRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def login(self) -> None:
        path = "/v1/login" if self.flavour == "2022" else "/v1/user/login"
        try:
            response = await send(self._http, "POST", path, system=SYSTEM, json=self._credentials)
        except OutcomeUnknown as exc:
            raise StateUnavailable(exc.message, system=SYSTEM) from exc
        if response.status_code in (400, 401, 403):
            raise StateAuthError(f"BioTrack login refused ({response.status_code})", system=SYSTEM)
        # Login stores nothing; a lost answer is simply unavailable.
        raise_for_status(response, system=SYSTEM, is_write=False)
        self._token = decode(response, _Session, system=SYSTEM).session
        if not self._token:
            raise StateAuthError("BioTrack login answered without a session", system=SYSTEM)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        read_only: bool = False,
    ) -> httpx.Response | None:
        """Authenticated call; logs in again once on a 401 (nothing was applied then). None on 404."""
        for attempt in (1, 2):
            if self._token is None:
                await self.login()
            try:
                response = await send(
                    self._http,
                    method,
                    path,
                    system=SYSTEM,
                    json=json,
                    params=params,
                    headers={"authorization": f"Bearer {self._token}"},
                )
            except OutcomeUnknown as exc:
                if read_only:  # a lookup sent as POST changes nothing
                    raise StateUnavailable(exc.message, system=SYSTEM) from exc
                raise
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if response.status_code == 404:
                return None
            raise_for_status(response, system=SYSTEM, is_write=not read_only and method != "GET")
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def dispense(self, body: dict[str, Any]) -> int | None:
        """Record a sale (body from ``biotrack_rest_dispense``); returns BioTrack's transaction id."""
        path = "/v1/dispense" if self.flavour == "2022" else "/v1/sale"
        response = await self._request("POST", path, json=body)
        if response is None:
            raise StateUnavailable(f"{path} not found", system=SYSTEM)
        return decode(response, Dispensed, system=SYSTEM).sale_transaction_id  # type: ignore[no-any-return]

    async def _list(self, path: str, key: str, type_: Any, params: dict[str, Any] | None = None) -> list[Any]:
        response = await self._request("GET", path, params=params)
        if response is None:
            return []
        rows = listed(read_json(response, system=SYSTEM), key)
        return convert(rows, list[type_], system=SYSTEM, endpoint=endpoint_of(response))  # type: ignore[no-any-return]

    async def sales_by_request_id(self, request_id: str) -> list[RestSale]:
        """The idempotency check before resending a dispense whose answer was lost ([I]: the ``RequestID``
        search parameter of ``GET /v1/sale`` is not shown in any public source)."""
        return await self._list("/v1/sale", "Sale", RestSale, {"RequestID": request_id})

    async def void_sale(self, transaction_id: int) -> None:
        # 2024 ([I] mock): ``PUT /v1/sale/{id}/void`` -> ``{"transactionID": 0}``
        method = "PUT" if self.flavour == "2024" else "POST"
        if await self._request(method, f"/v1/sale/{transaction_id}/void") is None:
            raise StateRejected(
                f"sale {transaction_id} not found", [RowError(0, "sale not found")], system=SYSTEM
            )

    async def refund_sale(self, transaction_id: int, items: list[dict[str, Any]]) -> None:
        # ``POST /v1/sale/{id}/refund`` in both; its request body is not in any public source ([I] ``Item``)
        if await self._request("POST", f"/v1/sale/{transaction_id}/refund", json={"Item": items}) is None:
            raise StateRejected(
                f"sale {transaction_id} not found", [RowError(0, "sale not found")], system=SYSTEM
            )

    async def patient_lookup(self, card_id: str) -> CardStatus | None:
        response = await self._request(
            "POST",
            "/v1/patient/lookup",
            json={"CardID": card_id, "LocationLicense": self.location_license},
            read_only=True,
        )
        if response is None:
            return None
        card = decode(response, CardStatus, system=SYSTEM)
        return card if card.card_id != "" else None  # [I] an empty CardID means not found

    async def inventory(self, barcode: str | None = None) -> list[InventoryRow]:
        return await self._list(
            "/v1/inventory", "Inventory", InventoryRow, {"Barcode": barcode} if barcode else None
        )

    async def inventory_adjust(self, adjustments: list[dict[str, Any]]) -> None:
        """Each: {Barcode, Quantity (the new quantity), Type (1–6), Reason}. 2024: PUT ([I] mock)."""
        method = "PUT" if self.flavour == "2024" else "POST"
        await self._request(method, "/v1/inventory/adjust", json=adjustments)

    async def inbound_transfers(self) -> list[InboundTransfer]:
        return await self._list("/v1/inventory/transfer/inbound", "Transfer", InboundTransfer)

    async def receive_transfer(self, transfer_id: int, items: list[dict[str, Any]]) -> None:
        """Each item: {Barcode, ReceivedQuantity, Status: accepted|rejected, Reason}; unlisted = missing."""
        method = "PUT" if self.flavour == "2024" else "POST"  # 2024: PUT ([I] mock)
        response = await self._request(
            method, f"/v1/inventory/transfer/{transfer_id}/receive", json={"Item": items}
        )
        if response is None:
            raise StateRejected(
                f"transfer {transfer_id} not found", [RowError(0, "transfer not found")], system=SYSTEM
            )
