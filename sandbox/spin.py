"""A Dejavoo SPIn proxy with one terminal behind it, for the demo and the tests.

Built from Dejavoo's "SPIn REST API Methods" documentation (the examples are copied with their source in
``tests/drivers/data/spin/``): the same paths, the same body fields, answers in the documented shape
(``GeneralResponse`` with ``ResultCode``/``StatusCode``, HTTP 200 even for a failure) and the documented
status codes. It is a plain HTTP/1.1 server (``sandbox/tiny_http.py``) so it can do what a real network does to
a register: hold a request, drop a connection without answering.

Control (attributes, set by tests or the demo):
    mode        "approve"      every Sale approved (0000)
                "decline"      declined by the host (1015, host code ``decline_host_code``: "51" insufficient
                               funds, "55" incorrect PIN, "05" do not honour, "54" expired card)
                "wait"         the customer never finishes: the Sale is held until Abort (1012 Canceled) or
                               the proxy timeout (2007), or ``finish_waiting(approve=…)``
                "timeout"      the terminal approves, but the proxy gives up first: 2007 after
                               ``proxy_timeout_s`` (the money was taken; only Status tells)
                "lose_answer"  the terminal approves, the connection drops before the answer is sent
                "offline"      the terminal is not connected to the proxy: Sale 2001, TerminalStatus Offline
    partial_cents   when set, an approved Sale is only partly approved (0001 Partial Approval) for this
                    amount
    status_code     when set, every Status is answered with this proxy code ("2007" timed out, "2008"
                    terminal in use) instead of the transaction
    void_mode   "ok"; "refuse" (Void answered 2001 Terminal not connected); "lose" (the connection drops
                before the Void's answer, nothing voided)
    ignore_abort    the customer already tapped: Abort finds nothing to stop (2301) and the held Sale goes
                    on until ``finish_waiting`` (a late approval)
    sales       every Sale request received: (ReferenceId, amount in cents)
    batch       ReferenceId -> Transaction (the terminal's open batch)
    aborts      ReferenceIds aborted
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import trio

from sandbox.tiny_http import Answer, HttpRequest, serve_json

log = logging.getLogger("sandbox.spin")

Mode = Literal["approve", "decline", "wait", "timeout", "lose_answer", "offline"]
HOST_DECLINES = {  # ISO 8583 response codes a host sends with a decline (HostResponseCode/Message)
    "51": "INSUFF FUNDS",
    "55": "INCORRECT PIN",
    "05": "DO NOT HONOR",
    "54": "EXPIRED CARD",
    "61": "EXCEEDS LIMIT",
}


@dataclass
class Transaction:
    reference: str
    kind: Literal["Sale", "Return"]
    amount_cents: int
    state: Literal["approved", "declined", "canceled"]
    auth_code: str = ""
    number: int = 0
    voided: bool = False
    host_code: str = ""


def _cents(amount: Any) -> int:
    return int((Decimal(str(amount or 0)) * 100).to_integral_value())


def _dollars(cents: int) -> float:
    return float(Decimal(cents) / 100)


class SpinEmulator:
    def __init__(
        self, *, tpn: str = "Z11STOREHUB1", auth_key: str = "Ab12Cd34Ef", host: str = "127.0.0.1"
    ) -> None:
        self.tpn = tpn
        self.auth_key = auth_key
        self.host = host
        self.port = 0
        self.mode: Mode = "approve"
        self.decline_host_code = "51"
        self.proxy_timeout_s = 120.0
        self.partial_cents: int | None = None
        self.status_code: str | None = None
        self.void_mode: Literal["ok", "refuse", "lose"] = "ok"
        self.ignore_abort = False
        self.voids: list[tuple[str, int]] = []
        self.progress_text = "Insert, tap or swipe card"  # the terminal's intermediate status while waiting
        self.sales: list[tuple[str, int]] = []
        self.returns: list[tuple[str, int]] = []
        self.batch: dict[str, Transaction] = {}
        self.aborts: list[str] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (path, body) of every request
        self.waiting: dict[str, trio.Event] = {}
        self._finish: dict[str, str] = {}
        self._numbers = 0
        self._auth = 100

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def finish_waiting(self, *, approve: bool) -> None:
        """The customer at the PIN pad finally taps (approve) or the card is refused."""
        for ref, event in list(self.waiting.items()):
            self._finish[ref] = "approve" if approve else "decline"
            event.set()

    # --------------------------------------------------------------------------------- server
    async def run(self, *, task_status: trio.TaskStatus[SpinEmulator] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.port = await nursery.start(
                functools.partial(serve_json, self._route, host=self.host, port=self.port)
            )
            task_status.started(self)

    async def _route(self, request: HttpRequest) -> Answer:
        path = request.path
        if request.method == "GET" and path == "/v2/Common/TerminalStatus":
            self.requests.append((path, dict(request.query)))
            return self._terminal_status(request.query)
        if request.method == "GET" and path == "/v2/IntermediateStatus/GetStatus":
            return self._intermediate(request.query)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return 200, self._general("2", "2006", "Not pars request", "Invalid request")
        if not isinstance(body, dict):
            return 200, self._general("2", "2006", "Not pars request", "Invalid request")
        self.requests.append((path, body))
        if (refused := self._authenticate(body)) is not None:
            return 200, refused
        if path == "/v2/Payment/Sale":
            return await self._sale(body, "Sale")
        if path == "/v2/Payment/Return":
            return await self._sale(body, "Return")
        if path == "/v2/Payment/Status":
            if self.status_code is not None:  # the proxy could not ask the terminal
                code = self.status_code
                text = "Terminal in use" if code == "2008" else "The operation has timed out"
                return 200, self._general("2", code, text, text)
            return 200, self._status(body)
        if path == "/v2/Payment/Void":
            self.voids.append((str(body.get("ReferenceId") or ""), _cents(body.get("Amount"))))
            if self.void_mode == "refuse":
                return 200, self._general(
                    "2", "2001", "Terminal not connected", "Terminal not connected to SPIn Proxy server"
                )
            if self.void_mode == "lose":
                return None
            return 200, self._void(body)
        if path == "/v2/Payment/AbortTransaction":
            return 200, self._abort(body)
        return 404, {"Message": "No HTTP resource was found that matches the request URI."}

    def _authenticate(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if body.get("Tpn") != self.tpn:
            return self._general("2", "2003", "Register not found", "TPN wrong or does not exist")
        if body.get("Authkey") != self.auth_key:
            return self._general("2", "2002", "Active AuthKey not found", "AuthKey in request is wrong")
        return None

    def _terminal_status(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if query.get("request.tpn") != self.tpn or query.get("request.authkey") != self.auth_key:
            return 404, {
                "TerminalStatus": "NotFound",
                "Tpn": query.get("request.tpn", ""),
                "ErrorDescription": "",
            }
        state = "Offline" if self.mode == "offline" else "Online"
        return 200, {"TerminalStatus": state, "Tpn": self.tpn, "ErrorDescription": ""}

    def _intermediate(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """ "Get Intermediate Status" (documented fields StatusDateTime, StatusText, StatusCode); the texts
        are the emulator's own — the documentation lists no values."""
        ref = query.get("getrequest.referenceid", "")
        if query.get("getrequest.tpn") != self.tpn or query.get("getrequest.authkey") != self.auth_key:
            return 400, {"StatusDateTime": "", "StatusText": "", "StatusCode": ""}
        if ref not in self.waiting:
            return 404, {"StatusDateTime": "", "StatusText": "", "StatusCode": ""}
        now = datetime.now(UTC).isoformat()
        return 200, {"StatusDateTime": now, "StatusText": self.progress_text, "StatusCode": "1"}

    async def _sale(
        self, body: dict[str, Any], kind: Literal["Sale", "Return"]
    ) -> tuple[int, dict[str, Any]] | None:
        ref = str(body.get("ReferenceId") or "")
        if not ref:
            return 200, self._general("1", "1010", "Missing Reference ID", "The reference ID is missing")
        if len(ref) > 50 or not ref.isalnum():
            return 200, self._general("1", "1013", "Bad Request", "ReferenceId must be 1-50 alphanumerics")
        amount = _cents(body.get("Amount"))
        if amount <= 0:
            return 200, self._general("1", "1013", "Bad Request", "Amount is 0")
        (self.sales if kind == "Sale" else self.returns).append((ref, amount))
        if ref in self.batch:
            # documented "Error" example of Sale: 1011 Duplicate Reference Id
            return 200, self._payment(body, kind, "1", "1011", "Canceled", "Duplicate Reference Id")
        if self.mode == "offline":
            return 200, self._general(
                "2", "2001", "Terminal not connected", "Terminal not connected to SPIn Proxy server"
            )
        if self.waiting:
            return 200, self._general("2", "2008", "Terminal in use", "Terminal in use", delay=5.0)
        timeout = float(body.get("SPInProxyTimeout") or self.proxy_timeout_s)
        mode = self.mode
        if mode == "wait" or (mode == "timeout" and kind == "Sale"):
            outcome = await self._hold(ref, min(timeout, self.proxy_timeout_s))
            if outcome == "aborted":
                self.batch[ref] = Transaction(ref, kind, amount, "canceled")
                return 200, self._payment(body, kind, "1", "1012", "Canceled", "Canceled by user")
            if outcome == "timeout":
                if mode == "timeout":  # the terminal approved after all; the proxy stopped waiting
                    self._approve(ref, kind, amount)
                return 200, self._general(
                    "2",
                    "2007",
                    "The operation has timed out",
                    "Terminal did not provide response during timeout time",
                )
            mode = "approve" if outcome == "approve" else "decline"
        if mode == "decline":
            code = self.decline_host_code
            self.batch[ref] = Transaction(ref, kind, amount, "declined", host_code=code)
            return 200, self._payment(
                body,
                kind,
                "1",
                "1015",
                "Declined",
                "A transaction is declined by the host",
                host=(code, HOST_DECLINES.get(code, "DECLINED")),
            )
        if self.partial_cents is not None and kind == "Sale":
            t = self._approve(ref, kind, self.partial_cents)
            answer = self._approved(t, body.get("PaymentType", "Credit"))
            answer["GeneralResponse"].update(StatusCode="0001", Message="Partial Approval")
            return 200, answer
        t = self._approve(ref, kind, amount)
        answer = self._approved(t, body.get("PaymentType", "Credit"))
        if mode == "lose_answer":
            return None
        return 200, answer

    async def _hold(self, ref: str, timeout: float) -> str:
        event = self.waiting[ref] = trio.Event()
        try:
            with trio.move_on_after(timeout):
                await event.wait()
                return self._finish.pop(ref, "aborted")
            return "timeout"
        finally:
            self.waiting.pop(ref, None)

    def _approve(self, ref: str, kind: Literal["Sale", "Return"], amount: int) -> Transaction:
        self._numbers += 1
        self._auth += 1
        t = self.batch[ref] = Transaction(ref, kind, amount, "approved", f"VTL{self._auth}", self._numbers)
        return t

    def _status(self, body: dict[str, Any]) -> dict[str, Any]:
        t = self.batch.get(str(body.get("ReferenceId") or ""))
        if t is None:
            return self._payment(
                body,
                "Sale",
                "1",
                "1001",
                "Not Found",
                "Status request could not find a matching transaction record",
            )
        if t.state == "approved":
            return self._approved(t, body.get("PaymentType", "Credit"))
        if t.state == "declined":
            return self._payment(
                body,
                t.kind,
                "1",
                "1015",
                "Declined",
                "A transaction is declined by the host",
                host=(t.host_code, HOST_DECLINES.get(t.host_code, "DECLINED")),
            )
        return self._payment(body, t.kind, "1", "1012", "Canceled", "Canceled by user")

    def _void(self, body: dict[str, Any]) -> dict[str, Any]:
        t = self.batch.get(str(body.get("ReferenceId") or ""))
        if t is None or t.state != "approved" or t.voided:  # a voided transaction cannot be voided again
            return self._payment(
                body, "Void", "1", "1001", "Not Found", "Void request could not find the transaction"
            )
        if _cents(body.get("Amount")) != t.amount_cents:
            return self._payment(
                body, "Void", "1", "1013", "Bad Request", "Amount does not match the transaction"
            )
        t.voided = True
        answer = self._approved(t, body.get("PaymentType", "Credit"))
        answer["TransactionType"] = "Void"
        return answer

    def _abort(self, body: dict[str, Any]) -> dict[str, Any]:
        ref = str(body.get("ReferenceId") or "")
        self.aborts.append(ref)
        event = self.waiting.get(ref) if ref else next(iter(self.waiting.values()), None)
        if event is None or self.ignore_abort:
            return self._general("2", "2301", "There is no processing request now", "")
        event.set()  # no finish recorded: the held Sale ends as 1012 Canceled
        return self._general("0", "0000", "", "")

    # --------------------------------------------------------------------------------- shapes
    @staticmethod
    def _general(
        result: str, status: str, message: str, detail: str, *, delay: float | None = None
    ) -> dict[str, Any]:
        return {
            "GeneralResponse": {
                "ResultCode": result,
                "StatusCode": status,
                "Message": message,
                "DetailedMessage": detail,
                "DelayBeforeNextRequest": delay,
            }
        }

    def _payment(
        self,
        body: dict[str, Any],
        kind: str,
        result: str,
        status: str,
        message: str,
        detail: str,
        *,
        host: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        general = self._general(result, status, message, detail)["GeneralResponse"]
        del general["DelayBeforeNextRequest"]
        if host is not None:
            general = {"HostResponseCode": host[0], "HostResponseMessage": host[1], **general}
        return {
            "Amounts": {"Amount": None, "TipAmount": None, "FeeAmount": None, "TaxAmount": None},
            "GeneralResponse": general,
            "PaymentType": body.get("PaymentType", "Credit"),
            "TransactionType": kind,
            "ReferenceId": body.get("ReferenceId", ""),
            "InvoiceNumber": body.get("InvoiceNumber", ""),
            "SerialNumber": "EMU0000STOREHUB",
        }

    def _approved(self, t: Transaction, payment_type: str) -> dict[str, Any]:
        amount = _dollars(t.amount_cents)
        return {
            "Amounts": {
                "TotalAmount": amount,
                "Amount": amount,
                "TipAmount": None,
                "FeeAmount": 0,
                "TaxAmount": 0,
            },
            "GeneralResponse": {
                "HostResponseCode": "00",
                "HostResponseMessage": f"APPROVAL {t.auth_code} ",
                "ResultCode": "0",
                "StatusCode": "0000",
                "Message": "Approved",
                "DetailedMessage": f"APPROVAL {t.auth_code}",
            },
            "PaymentType": payment_type,
            "TransactionType": t.kind,
            "AuthCode": t.auth_code,
            "ReferenceId": t.reference,
            "InvoiceNumber": "",
            "SerialNumber": "EMU0000STOREHUB",
            "BatchNumber": "1",
            "TransactionNumber": str(t.number),
            "Voided": t.voided,
            "CardData": {
                "CardType": "Visa",
                "EntryType": "Chip",
                "Last4": "0119",
                "First4": "4761",
                "BIN": "476173",
                "Name": "",
            },
        }
