"""Dejavoo SPIn REST: a semi-integrated card terminal reached through the SPIn proxy (cloud or local).

Every message below is shaped as Dejavoo documents it in "SPIn REST API Methods"
(https://app.theneo.io/dejavoo/spin/spin-rest-api-methods, base URL https://api.spinpos.net or
https://spinpos.net, sandbox https://test.spinpos.net/spin). Money goes on the wire in dollars as a
number (``"Amount": 25``); we keep integer cents everywhere else and convert here only.

The result of every payment request is in ``GeneralResponse`` (page "Error Codes and Messages"):
``ResultCode`` "0" success, "1" error on the terminal, "2" error on the SPIn proxy; ``StatusCode`` a
4-digit code: 0xxx from the terminal application (0000 Approved), 1xxx errors from the terminal app
(1012 Canceled, 1015 Declined, 1011 Duplicate Reference ID …), 2xxx errors of the proxy where the request
did not reach the terminal (2001 terminal not connected, 2007 timed out, 2008 terminal in use …). A
failure comes back as HTTP 200 with a non-zero ``ResultCode``: decide on the codes, never on HTTP alone.

Exactly once: ``ReferenceId`` "has to be unique within one batch" (Sale). When the answer to a Sale is
lost (the HTTP call timed out or broke after the request was sent, or the proxy says 2007) we ask
``Status`` for that ReferenceId before anything else; a Sale is never re-sent.

Credentials (TPN, auth key) come from store.toml; they travel in the body (POST) or the query (GET
Terminal Connection Status) and are never logged: no URL or request body of ours reaches a log line or an
error message, and ``repr`` hides the key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Literal

import httpx
import msgspec
import trio

from drivers.payment import (
    RECOVER_STEP_S,
    Approved,
    Cancelled,
    ChargeResult,
    Declined,
    Offline,
    TerminalStatus,
    TimedOut,
    Unresolved,
)

log = logging.getLogger("storehub.devices.spin")


class _RedactAuthKey(logging.Filter):
    """httpx logs each request's URL; Terminal Connection Status carries the auth key in its query."""

    _key = re.compile(r"(authkey=)[^&\s\"']*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "authkey=" in text.lower():
            record.msg, record.args = self._key.sub(r"\1***", text), None
        return True


logging.getLogger("httpx").addFilter(_RedactAuthKey())

PaymentType = Literal["Credit", "Debit", "EBT_Food", "EBT_Cash", "Card", "Cash", "Check", "Gift"]

# ---------------------------------------------------------------------------------------- messages
# Sale / Return / Void / Status bodies share these fields ("SPIn REST API Methods", Body Parameters).


class GeneralResponse(msgspec.Struct, frozen=True, rename="pascal"):
    """ "General response for payment request" (Sale, Return, Void, Status, Abort)."""

    result_code: str | int = ""  # "0" Ok, "1" TerminalError, "2" ApiError (some proxies send a number)
    status_code: str = ""  # 4 digits, see "Error Codes and Messages"
    message: str = ""
    detailed_message: str = ""
    host_response_code: str = ""  # from the processor as is (ISO 8583-1987): "00", "51" …
    host_response_message: str = ""
    delay_before_next_request: float | None = None  # seconds, with 2008 Terminal in use


class CardData(msgspec.Struct, frozen=True, rename="pascal"):
    card_type: str = ""
    entry_type: str = ""
    last4: str = ""


class Amounts(msgspec.Struct, frozen=True, rename="pascal"):
    total_amount: float | None = None  # "Amount with fee and tip"
    amount: float | None = None
    tip_amount: float | None = None
    fee_amount: float | None = None


class PaymentResponse(msgspec.Struct, frozen=True, rename="pascal"):
    """The answer to Sale, Return, Void and Status (same schema for all four)."""

    general_response: GeneralResponse = GeneralResponse()
    amounts: Amounts | None = None
    payment_type: str = ""
    transaction_type: str = ""
    auth_code: str = ""
    reference_id: str = ""
    invoice_number: str = ""
    serial_number: str = ""
    batch_number: str = ""
    transaction_number: str = ""
    voided: bool = False
    card_data: CardData | None = None


class SaleRequest(msgspec.Struct, frozen=True, rename="pascal"):
    """POST /v2/Payment/Sale. Also the body of POST /v2/Payment/Return ("behaves as Sale only
    vice-versa", its own unique ReferenceId) and POST /v2/Payment/Void ("To do void you need to know
    ReferenceID and amount of transaction that you void")."""

    amount: float
    payment_type: str
    reference_id: str
    tpn: str
    authkey: str
    print_receipt: str = "No"
    get_receipt: str = "No"
    capture_signature: bool = False
    get_extended_data: bool = True
    invoice_number: str = ""
    # "Indicates whether register is ready to receive intermediate status or not" (GetStatus below)
    is_ready_for_is: bool = msgspec.field(default=False, name="IsReadyForIS")
    spin_proxy_timeout: int | None = msgspec.field(default=None, name="SPInProxyTimeout")


class StatusRequest(msgspec.Struct, frozen=True, rename="pascal"):
    """POST /v2/Payment/Status: the outcome of the transaction with this ReferenceId (1001 Not Found:
    "Status request could not find a matching transaction record")."""

    payment_type: str
    reference_id: str
    tpn: str
    authkey: str
    print_receipt: str = "No"
    get_receipt: str = "No"


class AbortRequest(msgspec.Struct, frozen=True, rename="pascal"):
    """POST /v2/Payment/AbortTransaction: cancel the transaction the terminal is waiting on."""

    reference_id: str
    tpn: str
    authkey: str


class AbortResponse(msgspec.Struct, frozen=True, rename="pascal"):
    general_response: GeneralResponse = GeneralResponse()


class TerminalStatusResponse(msgspec.Struct, frozen=True, rename="pascal"):
    """GET /v2/Common/TerminalStatus?request.tpn=…&request.authkey=… ("Terminal Connection Status"):
    ``TerminalStatus`` is "Online", "Offline" or "NotFound"."""

    terminal_status: str = ""
    tpn: str = ""
    error_description: str = ""


class IntermediateStatus(msgspec.Struct, frozen=True, rename="pascal"):
    """GET /v2/IntermediateStatus/GetStatus?getRequest.tpn=…&getRequest.referenceId=…&getRequest.authkey=…
    ("Get Intermediate Status"): what the terminal is doing with a Sale sent with ``IsReadyForIS``."""

    status_date_time: str = ""
    status_text: str = ""
    status_code: str = ""


_encoder = msgspec.json.Encoder()
intermediate_status = msgspec.json.Decoder(IntermediateStatus)
payment_response = msgspec.json.Decoder(PaymentResponse)
abort_response = msgspec.json.Decoder(AbortResponse)
terminal_status_response = msgspec.json.Decoder(TerminalStatusResponse)

# ------------------------------------------------------------------------------------------- codes
APPROVED = "0000"
PARTIAL_APPROVAL = "0001"
NOT_FOUND = ("1001", "2009")  # terminal: no matching record; proxy: transaction not found
CANCELED = "1012"
DUPLICATE_REFERENCE = "1011"
DECLINED = "1015"
# "Error Codes and Messages": the only codes that say the host or the terminal refused the card
DECLINES = (DECLINED,)
PROXY_TIMED_OUT = "2007"  # "Terminal did not provide response during timeout time" (default 120 s)
TERMINAL_IN_USE = "2008"
# the request did not reach the terminal: nothing was charged
NOT_CONNECTED = ("2001", "2004", "2005", "2010", "2011")
BAD_CREDENTIALS = ("1009", "2002", "2003")  # auth key mismatch, auth key not found, register (TPN) not found

DEFAULT_PROXY_TIMEOUT_S = 120  # 2007: "Default timeout is 120 seconds"
STATUS_READ_S = 30.0
ABORT_READ_S = 15.0
VOID_READ_S = 60.0


def worst_case_s(proxy_timeout_s: float, connect_timeout_s: float) -> float:
    """The longest one SPIn charge can take, every wait of this driver and of the actor's recovery added
    up, so the hub never stops waiting before the terminal does (PaymentTerminalConfig.wait_s): the Sale
    (proxy timeout + 15 s), then either the lost answer / 2007 / 2008 path (Status here, then the actor's
    Abort and Status, each ≤ RECOVER_STEP_S) or a partial approval's Void and its Status check. Every
    HTTP call may first wait ``connect_timeout_s`` to connect."""
    sale = connect_timeout_s + proxy_timeout_s + 15.0
    status = connect_timeout_s + STATUS_READ_S
    lost = status + 2 * RECOVER_STEP_S
    partial = connect_timeout_s + VOID_READ_S + status
    return sale + max(lost, partial)


def dollars(cents: int) -> float:
    return float(Decimal(cents) / 100)


def cents(amount: float | None) -> int:
    return int((Decimal(str(amount or 0)) * 100).to_integral_value())


class SpinError(Exception):
    """The proxy could not be reached (before the request went out) — nothing happened."""


class AnswerLost(Exception):
    """The request went out but no readable answer came back — the outcome is unknown."""


class SpinTerminal:
    """A SPIn terminal identified by its TPN. ``base_url``: the SPIn proxy (``https://spinpos.net``, the
    sandbox, or the emulator in ``sandbox/spin.py``)."""

    def __init__(
        self,
        base_url: str,
        *,
        tpn: str,
        auth_key: str,
        payment_type: PaymentType = "Debit",
        proxy_timeout_s: int = DEFAULT_PROXY_TIMEOUT_S,
        connect_timeout_s: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tpn = tpn
        self._auth_key = str(auth_key)  # a plain str for the encoder, even from a Secret
        self.payment_type = payment_type
        self.proxy_timeout_s = proxy_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._transport = transport
        # set by the payment actor while it charges: ``await on_progress(state, text)``, state "waiting"
        # (the terminal's intermediate status) or "recovering" (the answer was lost: asking Status)
        self.on_progress: Callable[[str, str], Awaitable[None]] | None = None
        self.progress_interval_s = 1.0

    def __repr__(self) -> str:  # the auth key never shows in a log line or a traceback
        return f"SpinTerminal({self.base_url!r}, tpn={self.tpn!r})"

    @property
    def charge_timeout_s(self) -> float:
        """How long a Sale may take: the proxy's own timeout plus a margin, so the proxy's 2007 answer
        arrives before our HTTP timeout does."""
        return self.proxy_timeout_s + 15.0

    @property
    def worst_case_s(self) -> float:
        return worst_case_s(self.proxy_timeout_s, self.connect_timeout_s)

    # ------------------------------------------------------------------------------- transport
    async def _call(
        self, method: str, path: str, *, body: Any = None, params: Any = None, read_s: float
    ) -> bytes:
        timeout = httpx.Timeout(read_s, connect=self.connect_timeout_s)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=self._transport
        ) as http:
            try:
                response = await http.request(
                    method,
                    path,
                    content=None if body is None else _encoder.encode(body),
                    params=params,
                    headers={"Content-Type": "application/json"} if body is not None else None,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise SpinError(f"SPIn proxy unreachable ({type(exc).__name__})") from None
            except httpx.HTTPError as exc:  # sent, then the read timed out or the connection broke
                raise AnswerLost(f"no answer from the SPIn proxy ({type(exc).__name__})") from None
        if response.status_code >= 500:
            raise AnswerLost(f"SPIn proxy answered HTTP {response.status_code}")
        return response.content

    async def _payment(self, path: str, body: Any, *, read_s: float) -> PaymentResponse:
        raw = await self._call("POST", path, body=body, read_s=read_s)
        try:
            return payment_response.decode(raw)
        except msgspec.MsgspecError:
            raise AnswerLost("unreadable answer from the SPIn proxy") from None

    def _sale_body(self, amount_cents: int, reference: str) -> SaleRequest:
        return SaleRequest(
            amount=dollars(amount_cents),
            payment_type=self.payment_type,
            reference_id=reference,
            tpn=self.tpn,
            authkey=self._auth_key,
            spin_proxy_timeout=self.proxy_timeout_s,
            is_ready_for_is=self.on_progress is not None,
        )

    async def _with_progress(self, path: str, body: SaleRequest) -> PaymentResponse:
        """The Sale, while the terminal's intermediate status is passed on to ``on_progress``."""
        if self.on_progress is None:
            return await self._payment(path, body, read_s=self.charge_timeout_s)
        outcome: list[PaymentResponse | SpinError | AnswerLost] = []
        async with trio.open_nursery() as nursery:

            async def sale() -> None:
                try:
                    outcome.append(await self._payment(path, body, read_s=self.charge_timeout_s))
                except (SpinError, AnswerLost) as exc:  # raised below, outside the nursery's group
                    outcome.append(exc)
                finally:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(self._watch, body.reference_id)
            nursery.start_soon(sale)
        if isinstance(outcome[0], SpinError | AnswerLost):
            raise outcome[0]
        return outcome[0]

    async def _watch(self, reference: str) -> None:
        last = ""
        params = {
            "getRequest.tpn": self.tpn,
            "getRequest.referenceId": reference,
            "getRequest.authkey": self._auth_key,
        }
        while True:
            await trio.sleep(self.progress_interval_s)
            try:
                raw = await self._call("GET", "/v2/IntermediateStatus/GetStatus", params=params, read_s=5.0)
                text = intermediate_status.decode(raw).status_text.strip()
            except (SpinError, AnswerLost, msgspec.MsgspecError):
                continue  # progress is a courtesy: the Sale's own answer decides
            if text and text != last and self.on_progress is not None:
                last = text
                await self.on_progress("waiting", f"Terminal: {text}")

    # ------------------------------------------------------------------------------- interface
    async def charge(self, amount_cents: int, reference: str) -> ChargeResult:
        return await self._money("/v2/Payment/Sale", amount_cents, reference)

    async def refund(self, amount_cents: int, reference: str) -> ChargeResult:
        """POST /v2/Payment/Return: "an independent operation … Please use a unique ReferenceID"."""
        return await self._money("/v2/Payment/Return", amount_cents, reference)

    async def _money(self, path: str, amount_cents: int, reference: str) -> ChargeResult:
        if amount_cents <= 0:
            raise ValueError("charge amount must be positive")
        try:
            answer = await self._with_progress(path, self._sale_body(amount_cents, reference))
        except SpinError as exc:
            return Offline(reference, amount_cents, str(exc))
        except AnswerLost as exc:
            log.warning("SPIn %s %s: %s; asking Status before anything else", path, reference, exc)
            return await self._resolve(reference, amount_cents, str(exc))
        code = answer.general_response.status_code
        if code in (PROXY_TIMED_OUT, TERMINAL_IN_USE, DUPLICATE_REFERENCE):
            # 2007: the terminal did not answer the proxy in time; 2008: the proxy says the terminal is busy;
            # 1011: this ReferenceId already has a transaction in the batch. The truth is in Status, never
            # in a second Sale.
            return await self._resolve(reference, amount_cents, answer.general_response.detailed_message)
        result = self._outcome(reference, amount_cents, answer)
        if code == PARTIAL_APPROVAL:
            # a partly approved cannabis sale cannot be completed: give the money back, tell the register.
            # A void that is not confirmed is NOT a decline: the money may still be taken.
            taken = cents(answer.amounts.amount if answer.amounts else 0) or amount_cents
            if await self.void(reference, taken):
                return Declined(reference, amount_cents, "only part of the amount was approved; voided", code)
            return Unresolved(
                reference,
                taken,
                "only part of the amount was approved and the terminal did not confirm its void",
            )
        return result

    async def _resolve(self, reference: str, amount_cents: int, why: str) -> ChargeResult:
        if self.on_progress is not None:
            await self.on_progress(
                "recovering", "The terminal did not answer in time: asking it for the outcome."
            )
        found = await self.lookup(reference)
        if found is None:  # nothing charged; the caller cancels and confirms (actors/payment_terminal.py)
            return TimedOut(reference, amount_cents, f"{why}; the terminal has no record of it")
        if isinstance(found, TimedOut | Offline):
            return TimedOut(reference, amount_cents, f"{why}; Status unavailable, outcome unknown")
        return found

    def _outcome(self, reference: str, amount_cents: int, answer: PaymentResponse) -> ChargeResult:
        g = answer.general_response
        code = g.status_code
        if str(g.result_code) == "0" and code == APPROVED:
            if answer.voided:
                return Cancelled(reference, amount_cents)
            approved = (
                cents(answer.amounts.amount) if answer.amounts and answer.amounts.amount else amount_cents
            )
            last4 = answer.card_data.last4 if answer.card_data else ""
            return Approved(reference, approved, answer.auth_code, last4)
        if code == CANCELED:
            return Cancelled(reference, amount_cents)
        if code in NOT_CONNECTED:
            return Offline(reference, amount_cents, f"{g.message or 'terminal not connected'} ({code})")
        if code in BAD_CREDENTIALS:
            return Offline(reference, amount_cents, f"SPIn refused the TPN or auth key ({code})")
        if code in DECLINES:  # the only codes that mean "not charged, the host said no"
            reason = g.host_response_message.strip() or g.detailed_message or g.message or "declined"
            return Declined(reference, amount_cents, reason, g.host_response_code or code)
        # 2007 timed out, 2008 terminal in use, an empty or unknown code, no GeneralResponse at all: we do
        # not know whether money was taken, so the caller keeps asking (Abort, then Status)
        what = f"status code {code}" if code else "no status code"
        return TimedOut(
            reference, amount_cents, f"SPIn answered without an outcome ({what}); outcome unknown"
        )

    async def lookup(self, reference: str) -> ChargeResult | None:
        body = StatusRequest(
            payment_type=self.payment_type, reference_id=reference, tpn=self.tpn, authkey=self._auth_key
        )
        try:
            answer = await self._payment("/v2/Payment/Status", body, read_s=STATUS_READ_S)
        except SpinError as exc:
            return Offline(reference, 0, str(exc))
        except AnswerLost as exc:
            return TimedOut(reference, 0, str(exc))
        if answer.general_response.status_code in NOT_FOUND:
            return None
        return self._outcome(reference, 0, answer)

    async def cancel(self, reference: str) -> bool:
        body = AbortRequest(reference_id=reference, tpn=self.tpn, authkey=self._auth_key)
        try:
            raw = await self._call("POST", "/v2/Payment/AbortTransaction", body=body, read_s=ABORT_READ_S)
            answer = abort_response.decode(raw)
        except (SpinError, AnswerLost, msgspec.MsgspecError):
            return False
        return str(answer.general_response.result_code) == "0"

    async def void(self, reference: str, amount_cents: int) -> bool:
        body = SaleRequest(
            amount=dollars(amount_cents),
            payment_type=self.payment_type,
            reference_id=reference,
            tpn=self.tpn,
            authkey=self._auth_key,
        )
        try:
            answer = await self._payment("/v2/Payment/Void", body, read_s=VOID_READ_S)
        except (SpinError, AnswerLost):
            answer = None
        if answer is not None and answer.general_response.status_code == APPROVED:
            return True
        # refused or unknown: Status tells whether the transaction is voided ("Voided": true) — also the
        # answer when a retried void finds the transaction voided already (idempotent)
        found = await self.lookup(reference)
        return isinstance(found, Cancelled)

    async def status(self) -> TerminalStatus:
        params = {"request.tpn": self.tpn, "request.authkey": self._auth_key}
        try:
            raw = await self._call("GET", "/v2/Common/TerminalStatus", params=params, read_s=10.0)
            answer = terminal_status_response.decode(raw)
        except SpinError as exc:
            return TerminalStatus(online=False, detail=str(exc))
        except (AnswerLost, msgspec.MsgspecError):
            return TerminalStatus(online=False, detail="no status answer from the SPIn proxy")
        if answer.terminal_status == "Online":
            return TerminalStatus(online=True, detail="ready")
        if answer.terminal_status == "NotFound":
            return TerminalStatus(online=False, detail="SPIn does not know this TPN")
        return TerminalStatus(online=False, detail="terminal not connected to SPIn")
