"""Payment terminals: one interface for the register, whatever the terminal.

``PaymentTerminal`` is what the payment-terminal actor needs: ``charge`` (returns ``Approved``,
``Declined``, ``TimedOut`` or ``Offline``, never raises for an expected failure), ``cancel`` and
``status``. The meanings matter for the money:

- ``Offline``: the terminal could not be reached, so nothing was charged; the register goes cash-only.
- ``TimedOut``: the request reached the terminal but no answer came back in time — the outcome is
  unknown. The caller cancels, and a retry with the same ``reference`` is answered with the terminal's
  stored result, never a second charge.

``TcpJsonTerminal`` speaks a small line-delimited JSON protocol over TCP, the shape of a semi-integrated
terminal gateway; the simulator (``drivers/sim/payment_terminal.py``) serves it. A vendor integration is
another class with the same three methods.
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


class Declined(msgspec.Struct, frozen=True, tag="declined"):
    reference: str
    amount_cents: int
    reason: str


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


ChargeResult = Approved | Declined | TimedOut | Offline | Cancelled


class TerminalStatus(msgspec.Struct, frozen=True):
    online: bool
    busy: bool = False
    detail: str = ""


class PaymentTerminal(Protocol):
    async def charge(self, amount_cents: int, reference: str) -> ChargeResult: ...
    async def cancel(self, reference: str) -> bool: ...
    async def status(self) -> TerminalStatus: ...


# ------------------------------------------------------------------------------------------ wire


class ChargeRequest(msgspec.Struct, frozen=True, tag="charge"):
    reference: str
    amount_cents: int


class CancelRequest(msgspec.Struct, frozen=True, tag="cancel"):
    reference: str


class StatusRequest(msgspec.Struct, frozen=True, tag="status"):
    pass


class ChargeReply(msgspec.Struct, frozen=True, tag="charge_result"):
    reference: str
    result: Literal["approved", "declined", "cancelled"]
    amount_cents: int
    auth_code: str = ""
    reason: str = ""


class CancelReply(msgspec.Struct, frozen=True, tag="cancel_result"):
    reference: str
    ok: bool


class StatusReply(msgspec.Struct, frozen=True, tag="status_result"):
    busy: bool
    detail: str = ""


Request = ChargeRequest | CancelRequest | StatusRequest
Reply = ChargeReply | CancelReply | StatusReply

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
        if amount_cents <= 0:
            raise ValueError("charge amount must be positive")
        try:
            reply = await self._request(ChargeRequest(reference, amount_cents), self.charge_timeout_s)
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
        if reply.result == "approved":
            return Approved(reference, reply.amount_cents, reply.auth_code)
        if reply.result == "cancelled":
            return Cancelled(reference, amount_cents)
        return Declined(reference, amount_cents, reply.reason or "declined")

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
