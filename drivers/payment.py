"""Payment terminals: one interface for the register, whatever the terminal.

``PaymentTerminal`` is what the payment-terminal actor needs:

- ``charge(amount, reference)``: ``Approved``, ``Declined``, ``Cancelled``, ``TimedOut`` or ``Offline``,
  never raises for an expected failure;
- ``cancel(reference)``: stop the terminal waiting for the card (SPIn "Abort Transaction");
- ``lookup(reference)``: the outcome of an attempt whose answer was lost (SPIn "Status"); ``None`` when
  the terminal has no such attempt (nothing was charged);
- ``void(reference, amount)``: take back an approved charge of today's batch;
- ``refund(amount, reference)``: a return to the customer's card (a new attempt, its own reference);
- ``status()``: is the terminal connected.

The meanings matter for the money:

- ``Offline``: the terminal could not be reached, so nothing was charged; the register goes cash-only.
- ``Unresolved``: money may have been taken and could not be given back (a partial approval whose void
  failed): the register says "void it at the terminal" and the hub retries the void until confirmed.
- ``TimedOut``: the request reached the terminal but no answer came back in time — the outcome is
  unknown. The caller cancels and then asks ``lookup`` for the real outcome before anything is resent,
  so one attempt is charged at most once.

Drivers: ``TcpJsonTerminal`` (the "generic" driver, below) speaks a small line-delimited JSON protocol over
TCP for integrators who put their own gateway in front of a terminal; the simulator
(``drivers/sim/payment_terminal.py``) serves it. ``drivers/spin.py`` speaks Dejavoo SPIn REST.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec
import trio

# ------------------------------------------------------------------------------------------ results


class Approved(msgspec.Struct, frozen=True, tag="approved"):
    reference: str
    amount_cents: int
    auth_code: str
    card_last4: str = ""


class Declined(msgspec.Struct, frozen=True, tag="declined"):
    reference: str
    amount_cents: int
    reason: str
    # the processor's response code when the terminal gives one (ISO 8583 "51" = insufficient funds);
    # the register turns it into a plain sentence (hub/domain/card_outcome.py)
    code: str = ""


class TimedOut(msgspec.Struct, frozen=True, tag="timed_out"):
    reference: str
    amount_cents: int
    detail: str = "no answer from the terminal; outcome unknown"


class Offline(msgspec.Struct, frozen=True, tag="offline"):
    reference: str
    amount_cents: int
    detail: str


class Cancelled(msgspec.Struct, frozen=True, tag="cancelled"):
    reference: str
    amount_cents: int


class Unresolved(msgspec.Struct, frozen=True, tag="unresolved"):
    """Money may have been taken and could not be given back (a partial approval whose void the terminal
    did not confirm): never a decline. The register tells the budtender to void it at the terminal, and the
    hub keeps a pending reversal of ``amount_cents`` until the terminal confirms."""

    reference: str
    amount_cents: int
    detail: str


ChargeResult = Approved | Declined | TimedOut | Offline | Cancelled | Unresolved
# the actor's recovery after a TimedOut: Abort, then Status, each bounded by this (actors/payment_terminal.py)
RECOVER_STEP_S = 30.0


def worst_case_s(charge_timeout_s: float, connect_timeout_s: float) -> float:
    """The longest one charge of the generic driver can take: connect, the charge's own timeout, then the
    actor's Abort and lookup (PaymentTerminalConfig.wait_s adds a margin)."""
    return connect_timeout_s + charge_timeout_s + 2 * RECOVER_STEP_S


class TerminalStatus(msgspec.Struct, frozen=True):
    online: bool
    busy: bool = False
    detail: str = ""


class PaymentTerminal(Protocol):
    async def charge(self, amount_cents: int, reference: str) -> ChargeResult: ...
    async def cancel(self, reference: str) -> bool: ...
    async def lookup(self, reference: str) -> ChargeResult | None: ...
    async def void(self, reference: str, amount_cents: int) -> bool: ...
    async def refund(self, amount_cents: int, reference: str) -> ChargeResult: ...
    async def status(self) -> TerminalStatus: ...


# ------------------------------------------------------------------------------------------ wire


class ChargeRequest(msgspec.Struct, frozen=True, tag="charge"):
    reference: str
    amount_cents: int


class CancelRequest(msgspec.Struct, frozen=True, tag="cancel"):
    reference: str


class StatusRequest(msgspec.Struct, frozen=True, tag="status"):
    pass


class LookupRequest(msgspec.Struct, frozen=True, tag="lookup"):
    """The outcome of an earlier charge; answered with its ``ChargeReply`` or ``LookupReply(found=False)``."""

    reference: str


class VoidRequest(msgspec.Struct, frozen=True, tag="void"):
    reference: str
    amount_cents: int


class RefundRequest(msgspec.Struct, frozen=True, tag="refund"):
    reference: str
    amount_cents: int


class ChargeReply(msgspec.Struct, frozen=True, tag="charge_result"):
    reference: str
    result: Literal["approved", "declined", "cancelled"]
    amount_cents: int
    auth_code: str = ""
    reason: str = ""
    code: str = ""  # the processor's response code of a decline ("51"), when the gateway knows it
    card_last4: str = ""


class CancelReply(msgspec.Struct, frozen=True, tag="cancel_result"):
    reference: str
    ok: bool


class StatusReply(msgspec.Struct, frozen=True, tag="status_result"):
    busy: bool
    detail: str = ""


class LookupReply(msgspec.Struct, frozen=True, tag="lookup_result"):
    reference: str
    found: bool


class VoidReply(msgspec.Struct, frozen=True, tag="void_result"):
    reference: str
    ok: bool


Request = ChargeRequest | CancelRequest | StatusRequest | LookupRequest | VoidRequest | RefundRequest
Reply = ChargeReply | CancelReply | StatusReply | LookupReply | VoidReply

_encoder = msgspec.json.Encoder()
request_decoder = msgspec.json.Decoder(Request)
reply_decoder = msgspec.json.Decoder(Reply)
MAX_LINE = 16_384


def encode_line(message: Request | Reply) -> bytes:
    return _encoder.encode(message) + b"\n"


class LinkLost(Exception):
    """The connection broke or the peer spoke nonsense."""


class LineReader:
    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = bytearray()

    async def line(self) -> bytes:
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 1]
                return line
            if len(self._buf) > MAX_LINE:
                raise LinkLost("line too long")
            try:
                data = await self._stream.receive_some(4096)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise LinkLost(str(exc)) from exc
            if not data:
                raise LinkLost("connection closed")
            self._buf += data


class TcpJsonTerminal:
    """Client of a terminal at ``host:port``. One short connection per request, so a cancel can reach
    the terminal while a charge is waiting for the customer."""

    def __init__(
        self, address: str, *, connect_timeout_s: float = 3.0, charge_timeout_s: float = 90.0
    ) -> None:
        host, _, port = address.removeprefix("tcp://").rpartition(":")
        self.host, self.port = host, int(port)
        self.connect_timeout_s = connect_timeout_s
        self.charge_timeout_s = charge_timeout_s

    @property
    def worst_case_s(self) -> float:
        return worst_case_s(self.charge_timeout_s, self.connect_timeout_s)

    async def _connect(self) -> trio.SocketStream:
        with trio.fail_after(self.connect_timeout_s):
            return await trio.open_tcp_stream(self.host, self.port)

    async def _request(self, request: Request, timeout_s: float) -> Reply | None:
        """None on timeout after the request was sent; raises OSError/TooSlowError before it was sent,
        LinkLost after."""
        stream = await self._connect()
        async with stream:
            try:
                await stream.send_all(encode_line(request))
            except (trio.BrokenResourceError, OSError) as exc:
                raise OSError(f"send failed: {exc}") from exc
            reader = LineReader(stream)
            with trio.move_on_after(timeout_s):
                line = await reader.line()
                try:
                    return reply_decoder.decode(line)
                except msgspec.ValidationError as exc:
                    raise LinkLost(f"bad reply: {exc}") from exc
                except msgspec.DecodeError as exc:
                    raise LinkLost(f"bad reply: {exc}") from exc
            return None

    async def charge(self, amount_cents: int, reference: str) -> ChargeResult:
        return await self._money(ChargeRequest(reference, amount_cents))

    async def refund(self, amount_cents: int, reference: str) -> ChargeResult:
        return await self._money(RefundRequest(reference, amount_cents))

    async def _money(self, request: ChargeRequest | RefundRequest) -> ChargeResult:
        reference, amount_cents = request.reference, request.amount_cents
        if amount_cents <= 0:
            raise ValueError("charge amount must be positive")
        try:
            reply = await self._request(request, self.charge_timeout_s)
        except (OSError, trio.TooSlowError) as exc:
            return Offline(reference, amount_cents, f"terminal unreachable: {exc or 'connect timed out'}")
        except LinkLost as exc:
            return TimedOut(
                reference, amount_cents, f"connection lost during the charge ({exc}); outcome unknown"
            )
        if reply is None:
            return TimedOut(reference, amount_cents)
        if not isinstance(reply, ChargeReply) or reply.reference != reference:
            return TimedOut(reference, amount_cents, "terminal answered something else; outcome unknown")
        return _result(reply)

    async def lookup(self, reference: str) -> ChargeResult | None:
        try:
            reply = await self._request(LookupRequest(reference), self.connect_timeout_s)
        except (OSError, trio.TooSlowError) as exc:
            return Offline(reference, 0, f"terminal unreachable: {exc or 'connect timed out'}")
        except LinkLost as exc:
            return TimedOut(reference, 0, f"no status answer ({exc})")
        if isinstance(reply, ChargeReply) and reply.reference == reference:
            return _result(reply)
        if isinstance(reply, LookupReply) and reply.reference == reference and not reply.found:
            return None
        return TimedOut(reference, 0, "no status answer")

    async def void(self, reference: str, amount_cents: int) -> bool:
        try:
            reply = await self._request(VoidRequest(reference, amount_cents), self.connect_timeout_s)
        except (OSError, trio.TooSlowError, LinkLost):
            return False
        return isinstance(reply, VoidReply) and reply.ok

    async def cancel(self, reference: str) -> bool:
        try:
            reply = await self._request(CancelRequest(reference), self.connect_timeout_s)
        except (OSError, trio.TooSlowError, LinkLost):
            return False
        return isinstance(reply, CancelReply) and reply.ok

    async def status(self) -> TerminalStatus:
        try:
            reply = await self._request(StatusRequest(), self.connect_timeout_s)
        except (OSError, trio.TooSlowError) as exc:
            return TerminalStatus(online=False, detail=f"unreachable: {exc or 'connect timed out'}")
        except LinkLost as exc:
            return TerminalStatus(online=False, detail=str(exc))
        if not isinstance(reply, StatusReply):
            return TerminalStatus(online=False, detail="no status answer")
        return TerminalStatus(online=True, busy=reply.busy, detail=reply.detail or "ready")


def _result(reply: ChargeReply) -> ChargeResult:
    if reply.result == "approved":
        return Approved(reply.reference, reply.amount_cents, reply.auth_code, reply.card_last4)
    if reply.result == "cancelled":
        return Cancelled(reply.reference, reply.amount_cents)
    return Declined(reply.reference, reply.amount_cents, reply.reason or "declined", reply.code)
