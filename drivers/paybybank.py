"""Pay-by-bank apps (Aeropay, CanPay …): the customer approves a payment request on a phone; the store sees
an approval. One interface for the hub, one class per provider: no provider's vocabulary in the core.

``PayByBankProvider``:
- ``request_payment(amount, reference, phone)``: send the customer a payment request; ``reference`` is our
  id for it (unique per attempt, reused for every retry of the same attempt);
- ``payment(reference)``: where it stands — "pending" (not approved yet), "approved", "declined",
  "cancelled", "refunded";
- ``cancel(reference)``: withdraw a request not approved yet;
- ``refund(reference, amount)``: give money back on an approved payment.
``BankUnavailable`` when the provider cannot be reached: nothing changed on our side, ask again later.

``AeropayProvider`` maps this onto Aeropay's documented API (https://dev.aero.inc):
- ``POST /v2/token`` {apiKey, apiSecret, scope: "merchant", id} → a merchant-scoped bearer token, 30 min TTL
  ("Manage Transactions, Users, or Banks");
- ``POST /v2/paymentLink`` {merchantId, phone, amount (USD string), paymentType: "standard",
  transaction_uuid} sends the customer an Aeropay payment link ("Payment Links");
- ``GET /v2/transaction/{uuid}``: "Transactions can be fetched either by the Aeropay transaction ID or the
  transaction UUID sent from your system"; statuses ("Understanding Transaction Statuses"): "pending"
  (approved, funds guaranteed), "processed", "void"; no transaction yet = the customer has not paid;
- ``POST /v2/reverseTransaction?uuid=…&amount=…`` with an ``Idempotency-Key`` header: void the same day,
  refund after ("reverseTransaction").
A status outside those (the sandbox answers "declined" when the customer refuses) counts as declined.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Literal, Protocol

import httpx
import msgspec

log = logging.getLogger("storehub.paybybank")

BankState = Literal["pending", "approved", "declined", "cancelled", "refunded"]


class BankPayment(msgspec.Struct, frozen=True, kw_only=True):
    reference: str
    state: BankState
    amount_cents: int = 0
    provider_id: str = ""  # the provider's own transaction id
    customer_name: str = ""  # shown so the budtender can compare it with the ID (Aeropay asks for this)
    detail: str = ""


class BankUnavailable(Exception):
    """The provider could not be reached or answered nonsense; nothing is known to have changed."""


class PayByBankProvider(Protocol):
    name: str

    async def request_payment(self, amount_cents: int, reference: str, phone: str) -> BankPayment: ...
    async def payment(self, reference: str) -> BankPayment: ...
    async def cancel(self, reference: str) -> bool: ...
    async def refund(self, reference: str, amount_cents: int) -> BankPayment: ...


def bank_uuid(reference: str) -> str:
    """Aeropay's transaction_uuid must be a UUID (ISO/IEC 9834-8): a name-based one from our reference, so a
    retried request names the same transaction."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"storehub:{reference}"))


def _usd(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


class _Token(msgspec.Struct):
    token: str


class _Transaction(msgspec.Struct, rename="camel"):
    id: str | int = ""
    status: str = ""
    amount: str | float = "0"
    uuid: str = ""
    user_name: str = ""


class _TransactionAnswer(msgspec.Struct):
    transaction: _Transaction | None = None
    success: bool = True


class AeropayProvider:
    name = "aeropay"

    def __init__(
        self,
        base_url: str,
        *,
        merchant_id: str,
        api_key: str,
        api_secret: str,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.merchant_id = merchant_id
        self._api_key = str(api_key)
        self._api_secret = str(api_secret)
        self.timeout_s = timeout_s
        self._token = ""

    def __repr__(self) -> str:
        return f"AeropayProvider({self.base_url!r}, merchant_id={self.merchant_id!r})"

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s) as http:
                if not self._token:
                    r = await http.post(
                        "/v2/token",
                        json={
                            "apiKey": self._api_key,
                            "apiSecret": self._api_secret,
                            "scope": "merchant",
                            "id": self.merchant_id,
                        },
                    )
                    if r.status_code != 200:
                        raise BankUnavailable(f"Aeropay refused the API credentials (HTTP {r.status_code})")
                    self._token = msgspec.json.decode(r.content, type=_Token).token
                auth = {
                    "authorization": f"Bearer {self._token}",
                    "accept": "application/json",
                    **(headers or {}),
                }
                response = await http.request(method, path, json=json, params=params, headers=auth)
                if response.status_code == 401:  # the token's 30 minutes are up: once more with a new one
                    self._token = ""
                    return await self._send(method, path, json=json, params=params, headers=headers)
                return response
        except httpx.HTTPError as exc:
            raise BankUnavailable(f"Aeropay unreachable ({type(exc).__name__})") from None
        except msgspec.MsgspecError:
            raise BankUnavailable("unreadable answer from Aeropay") from None

    async def request_payment(self, amount_cents: int, reference: str, phone: str) -> BankPayment:
        body = {
            "merchantId": self.merchant_id,
            "phone": phone,
            "amount": _usd(amount_cents),
            "paymentType": "standard",
            "transaction_uuid": bank_uuid(reference),
        }
        r = await self._send("POST", "/v2/paymentLink", json=body)
        if r.status_code >= 400:
            return BankPayment(
                reference=reference,
                state="declined",
                amount_cents=amount_cents,
                detail=f"Aeropay refused the payment request (HTTP {r.status_code})",
            )
        return BankPayment(reference=reference, state="pending", amount_cents=amount_cents)

    async def payment(self, reference: str) -> BankPayment:
        r = await self._send("GET", f"/v2/transaction/{bank_uuid(reference)}")
        if r.status_code == 404:
            return BankPayment(
                reference=reference, state="pending", detail="waiting for the customer to approve"
            )
        if r.status_code >= 400:
            raise BankUnavailable(f"Aeropay answered HTTP {r.status_code}")
        try:
            t = msgspec.json.decode(r.content, type=_TransactionAnswer).transaction
        except msgspec.MsgspecError:
            raise BankUnavailable("unreadable transaction from Aeropay") from None
        if t is None:
            return BankPayment(reference=reference, state="pending")
        state: BankState = {
            "pending": "approved",
            "processed": "approved",
            "void": "cancelled",
            "refunded": "refunded",
        }.get(t.status, "declined")  # type: ignore[assignment]
        cents = int((Decimal(str(t.amount)) * 100).to_integral_value())
        return BankPayment(
            reference=reference,
            state=state,
            amount_cents=cents,
            provider_id=str(t.id),
            customer_name=t.user_name,
            detail=t.status,
        )

    async def cancel(self, reference: str) -> bool:
        """Nothing to withdraw at Aeropay until the customer pays: a link never paid debits nothing. If the
        customer paid meanwhile, the payment is reversed."""
        current = await self.payment(reference)
        if current.state == "approved":
            return (await self.refund(reference, current.amount_cents)).state in ("cancelled", "refunded")
        return True

    async def refund(self, reference: str, amount_cents: int) -> BankPayment:
        r = await self._send(
            "POST",
            "/v2/reverseTransaction",
            params={"uuid": bank_uuid(reference), "amount": _usd(amount_cents)},
            headers={"Idempotency-Key": bank_uuid(f"refund:{reference}:{amount_cents}")},
        )
        if r.status_code >= 400:
            return BankPayment(
                reference=reference,
                state="approved",
                amount_cents=amount_cents,
                detail=f"Aeropay refused the reversal (HTTP {r.status_code})",
            )
        return await self.payment(reference)
