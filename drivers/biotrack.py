"""BioTrack clients: the 2014 JSON-RPC (``serverjson.asp``) and the 2022/2024 REST shapes.

Both raise only ``drivers.state_errors``. Exactly once: the 2014 API takes a ``nonce`` and the REST API a
``RequestID``; the caller (the outbox) keeps them stable across retries so a resend after a lost answer is
recognised by the state, and can look a sale up by ``RequestID`` before resending.

Payloads are built by ``hub.domain.state_payloads``.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import msgspec

from drivers.state_errors import OutcomeUnknown, RowError, StateAuthError, StateRejected, StateUnavailable
from drivers.state_http import DEFAULT_TIMEOUT, decode, raise_for_status, send

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
        reply = decode(response, dict[str, Any], system=SYSTEM)
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


class CardExpiration(msgspec.Struct, rename="pascal"):
    year: int
    month: int
    day: int


class CardStatus(msgspec.Struct, rename="pascal", kw_only=True):
    """``/v1/patient/lookup``: ``card_limit`` is the patient's remaining allotment (grams)."""

    card_active: bool
    card_expiration: CardExpiration | None = None
    card_limit: float = 0.0
    privileges: list[str] | None = None
    card_id: str | None = msgspec.field(default=None, name="CardID")
    card_key: str | None = None


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
        self._token = str(decode(response, dict[str, Any], system=SYSTEM).get("Session") or "")
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

    async def dispense(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record a sale (body from ``biotrack_rest_dispense``); returns {TransactionID, RequestID, ExternalID}."""
        path = "/v1/dispense" if self.flavour == "2022" else "/v1/sale"
        response = await self._request("POST", path, json=body)
        if response is None:
            raise StateUnavailable(f"{path} not found", system=SYSTEM)
        return decode(response, dict[str, Any], system=SYSTEM)

    async def sales_by_request_id(self, request_id: str) -> list[dict[str, Any]]:
        """The idempotency check before resending a dispense whose answer was lost."""
        response = await self._request("GET", "/v1/sale", params={"RequestID": request_id})
        return [] if response is None else decode(response, list[dict[str, Any]], system=SYSTEM)

    async def void_sale(self, transaction_id: int) -> None:
        if await self._request("POST", f"/v1/sale/{transaction_id}/void") is None:
            raise StateRejected(
                f"sale {transaction_id} not found", [RowError(0, "sale not found")], system=SYSTEM
            )

    async def refund_sale(self, transaction_id: int, items: list[dict[str, Any]]) -> None:
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
        return None if response is None else decode(response, CardStatus, system=SYSTEM)

    async def inventory(self, barcode: str | None = None) -> list[dict[str, Any]]:
        response = await self._request(
            "GET", "/v1/inventory", params={"Barcode": barcode} if barcode else None
        )
        return [] if response is None else decode(response, list[dict[str, Any]], system=SYSTEM)

    async def inventory_adjust(self, adjustments: list[dict[str, Any]]) -> None:
        """Each: {Barcode, Quantity (the new quantity), Type (1–6), Reason}."""
        await self._request("POST", "/v1/inventory/adjust", json=adjustments)

    async def inbound_transfers(self) -> list[dict[str, Any]]:
        response = await self._request("GET", "/v1/inventory/transfer/inbound")
        return [] if response is None else decode(response, list[dict[str, Any]], system=SYSTEM)

    async def receive_transfer(self, transfer_id: int, items: list[dict[str, Any]]) -> None:
        """Each item: {Barcode, ReceivedQuantity, Status: accepted|rejected, Reason}; unlisted = missing."""
        response = await self._request(
            "POST", f"/v1/inventory/transfer/{transfer_id}/receive", json={"Item": items}
        )
        if response is None:
            raise StateRejected(
                f"transfer {transfer_id} not found", [RowError(0, "transfer not found")], system=SYSTEM
            )
