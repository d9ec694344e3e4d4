"""An Aeropay-shaped pay-by-bank service with a customer's phone attached, for the demo and the tests.

Serves the endpoints ``drivers/paybybank.AeropayProvider`` uses, as Aeropay documents them
(https://dev.aero.inc): ``POST /v2/token``, ``POST /v2/paymentLink``, ``GET /v2/transaction/{uuid}``,
``POST /v2/reverseTransaction``. The "phone" is the control API: the customer approves or declines the
request that was sent to it; with ``auto`` set the phone answers by itself as soon as a request arrives.
The hub learns the answer by polling the transaction (Aeropay's webhooks are the other documented way).

Control:
    auto = None | "approve" | "decline"     how the phone answers new requests
    approve(reference_uuid=None) / decline(...)   answer the oldest (or a given) waiting request
    requests        every payment link sent: (transaction_uuid, amount string, phone)
    transactions    uuid -> {"id", "status", "amount", "uuid", "userName"}
    reversals       (uuid, amount string, Idempotency-Key)
"""

from __future__ import annotations

import functools
import json
import secrets
from decimal import Decimal
from typing import Any, Literal

import trio

from sandbox.tiny_http import Answer, HttpRequest, serve_json


class PayByBankEmulator:
    def __init__(
        self,
        *,
        merchant_id: str = "1057",
        api_key: str = "key-demo",
        api_secret: str = "secret-demo",
        host: str = "127.0.0.1",
    ) -> None:
        self.merchant_id = merchant_id
        self.api_key = api_key
        self.api_secret = api_secret
        self.host = host
        self.port = 0
        self.auto: Literal["approve", "decline"] | None = None
        self.auto_after_s = 0.0  # the phone answers this long after the request (the demo's customer)
        self.customer_name = "Jordan Example"
        self.requests: list[tuple[str, str, str]] = []
        self.waiting: list[str] = []
        self.transactions: dict[str, dict[str, Any]] = {}
        self.reversals: list[tuple[str, str, str]] = []
        self._tokens: set[str] = set()
        self._ids = 5000
        self._idempotent: dict[str, Answer] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------------------- the phone
    def approve(self, reference_uuid: str | None = None) -> None:
        self._answer(reference_uuid, "pending")  # Aeropay: "pending" = approved, funds guaranteed

    def decline(self, reference_uuid: str | None = None) -> None:
        self._answer(reference_uuid, "declined")

    def _answer(self, reference_uuid: str | None, status: str) -> None:
        ref = reference_uuid or (self.waiting[0] if self.waiting else None)
        if ref is None or ref not in self.waiting:
            raise LookupError("no payment request is waiting on the phone")
        self.waiting.remove(ref)
        amount = next(a for u, a, _ in self.requests if u == ref)
        self._ids += 1
        self.transactions[ref] = {
            "id": self._ids,
            "status": status,
            "amount": amount,
            "uuid": ref,
            "userName": self.customer_name,
        }

    # ------------------------------------------------------------------------------- server
    async def run(
        self, *, task_status: trio.TaskStatus[PayByBankEmulator] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.port = await nursery.start(
                functools.partial(serve_json, self._route, host=self.host, port=self.port)
            )
            task_status.started(self)

    async def _route(self, req: HttpRequest) -> Answer:
        body: Any = None
        if req.body:
            try:
                body = json.loads(req.body)
            except ValueError:
                return 400, {"error": {"code": "AP701", "message": "Improperly Formatted Parameter"}}
        if req.method == "POST" and req.path == "/v2/token":
            return self._token(body or {})
        if req.headers.get("authorization", "").removeprefix("Bearer ") not in self._tokens:
            return 401, {"error": {"code": "AP401", "message": "Unauthorized"}}
        if req.method == "POST" and req.path == "/v2/paymentLink":
            return self._payment_link(body or {})
        if req.method == "GET" and req.path.startswith("/v2/transaction/"):
            t = self.transactions.get(req.path.rsplit("/", 1)[1])
            if t is None:
                return 404, {"error": {"code": "AP404", "message": "Transaction not found"}}
            return 200, {"success": True, "transaction": t}
        if req.method == "POST" and req.path == "/v2/reverseTransaction":
            key = req.headers.get("idempotency-key", "")
            if key and key in self._idempotent:
                return self._idempotent[key]
            answer = self._reverse(req.query, key)
            if key:
                self._idempotent[key] = answer
            return answer
        return 404, {"error": {"code": "AP404", "message": "Not found"}}

    def _token(self, body: dict[str, Any]) -> Answer:
        if (body.get("apiKey"), body.get("apiSecret"), str(body.get("id"))) != (
            self.api_key,
            self.api_secret,
            self.merchant_id,
        ):
            return 401, {"error": {"code": "AP401", "message": "Invalid credentials"}}
        token = secrets.token_hex(16)
        self._tokens.add(token)
        return 200, {"token": token, "TTL": 1800}

    def _payment_link(self, body: dict[str, Any]) -> Answer:
        if str(body.get("merchantId")) != self.merchant_id or not (body.get("phone") or body.get("email")):
            return 400, {"error": {"code": "AP700", "message": "merchantId and phone or email are required"}}
        ref = str(body.get("transaction_uuid") or "")
        if ref not in self.waiting and ref not in self.transactions:  # a re-sent link names the same payment
            self.requests.append((ref, str(body.get("amount") or "0"), str(body.get("phone") or "")))
            self.waiting.append(ref)
            if self.auto is not None and self.auto_after_s > 0 and self._nursery is not None:
                self._nursery.start_soon(self._answer_later, ref, self.auto)
            elif self.auto == "approve":
                self.approve(ref)
            elif self.auto == "decline":
                self.decline(ref)
        return 200, {"success": True}

    async def _answer_later(self, ref: str, how: str) -> None:
        await trio.sleep(self.auto_after_s)
        if ref in self.waiting:
            (self.approve if how == "approve" else self.decline)(ref)

    def _reverse(self, query: dict[str, str], key: str) -> Answer:
        t = self.transactions.get(query.get("uuid", ""))
        if t is None or t["status"] not in ("pending", "processed"):
            return 400, {"error": {"code": "AP720", "message": "Transaction cannot be reversed"}}
        amount = query.get("amount") or t["amount"]
        if Decimal(amount) > Decimal(t["amount"]):
            return 400, {"error": {"code": "AP721", "message": "Amount exceeds the transaction"}}
        self.reversals.append((t["uuid"], amount, key))
        # same business day: voided on the spot ("reverseTransaction")
        t["status"] = "void" if Decimal(amount) == Decimal(t["amount"]) else "refunded"
        return 200, {"success": True}
