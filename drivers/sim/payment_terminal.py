"""A simulated card terminal on loopback TCP, serving ``drivers.payment``'s line-JSON protocol.

Control API:
    address                         "127.0.0.1:<port>" for PaymentTerminalConfig.address
    mode = "approve" | "decline" | "timeout" | "lose_answer"    how the next charges end ("timeout":
                                    never answers until cancelled — the customer walked away from the PIN
                                    pad; "lose_answer": approves, then drops the connection unanswered)
    go_offline() / come_online()    stop listening and drop connections / listen again, same port
    charges                         every charge request received (reference, amount)
    results                         stored outcome per reference (a repeated reference gets it again)
    cancels                         references cancelled
    voids                           references voided
"""

from __future__ import annotations

from typing import Literal

import msgspec
import trio

from drivers.payment import (
    CancelReply,
    CancelRequest,
    ChargeReply,
    ChargeRequest,
    LineReader,
    LinkLost,
    LookupReply,
    LookupRequest,
    RefundRequest,
    StatusReply,
    StatusRequest,
    VoidReply,
    VoidRequest,
    encode_line,
    request_decoder,
)


class PaymentTerminalSimulator:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.mode: Literal["approve", "decline", "timeout", "lose_answer"] = "approve"
        self.decline_reason = "insufficient funds"
        self.decline_code = "51"
        self.voids: list[str] = []
        self.charges: list[tuple[str, int]] = []
        self.results: dict[str, ChargeReply] = {}
        self.cancels: list[str] = []
        self._waiting: dict[str, trio.Event] = {}
        self._online = trio.Event()
        self._online.set()
        self._scope: trio.CancelScope | None = None
        self._auth = 100000

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def busy(self) -> bool:
        return bool(self._waiting)

    def go_offline(self) -> None:
        self._online = trio.Event()
        if self._scope is not None:
            self._scope.cancel()

    def come_online(self) -> None:
        self._online.set()

    async def run(self, *, task_status: trio.TaskStatus[PaymentTerminalSimulator] = trio.TASK_STATUS_IGNORED):
        started = False
        while True:
            await self._online.wait()
            listeners = await trio.open_tcp_listeners(self.port, host=self.host)
            self.port = listeners[0].socket.getsockname()[1]
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    await nursery.start(trio.serve_listeners, self._serve, listeners)
                    if not started:
                        started = True
                        task_status.started(self)
            self._scope = None
            self._waiting.clear()
            for listener in listeners:
                await listener.aclose()

    async def _serve(self, stream: trio.SocketStream) -> None:
        async with stream:
            reader = LineReader(stream)
            try:
                line = await reader.line()
            except LinkLost:
                return
            try:
                request = request_decoder.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                return
            reply = await self._answer(request)
            if reply is not None:
                try:
                    await stream.send_all(encode_line(reply))
                except trio.BrokenResourceError:
                    return

    async def _answer(self, request):
        if isinstance(request, LookupRequest):
            found = self.results.get(request.reference)
            return found if found is not None else LookupReply(request.reference, False)
        if isinstance(request, VoidRequest):
            done = self.results.get(request.reference)
            ok = done is not None and done.result == "approved" and request.reference not in self.voids
            if ok:
                self.voids.append(request.reference)
            return VoidReply(request.reference, ok)
        if isinstance(request, RefundRequest):
            if request.reference not in self.results:
                self._auth += 1
                self.results[request.reference] = ChargeReply(
                    request.reference, "approved", request.amount_cents, auth_code=f"R{self._auth}"
                )
            return self.results[request.reference]
        if isinstance(request, StatusRequest):
            return StatusReply(busy=self.busy, detail="waiting for card" if self.busy else "ready")
        if isinstance(request, CancelRequest):
            self.cancels.append(request.reference)
            event = self._waiting.get(request.reference)
            if event is not None:
                event.set()
                return CancelReply(request.reference, True)
            return CancelReply(request.reference, request.reference not in self.results)
        assert isinstance(request, ChargeRequest)
        self.charges.append((request.reference, request.amount_cents))
        if request.reference in self.results:  # idempotent: the same sale is never charged twice
            return self.results[request.reference]
        if self.mode == "timeout":
            event = self._waiting[request.reference] = trio.Event()
            await event.wait()
            del self._waiting[request.reference]
            reply = ChargeReply(request.reference, "cancelled", request.amount_cents)
        elif self.mode == "decline":
            reply = ChargeReply(
                request.reference,
                "declined",
                request.amount_cents,
                reason=self.decline_reason,
                code=self.decline_code,
            )
        else:
            self._auth += 1
            reply = ChargeReply(
                request.reference,
                "approved",
                request.amount_cents,
                auth_code=f"A{self._auth}",
                card_last4="4242",
            )
        self.results[request.reference] = reply
        if self.mode == "lose_answer":
            return None  # charged, but the answer never leaves the terminal
        return reply
