"""Actor mailboxes: bounded trio channels, request/reply calls, and quarantine of poison messages.

A mailbox outlives the actor task that reads it, so after a crash the supervisor's restart finds the same
mailbox. The message that crashed the actor is delivered once more; if it crashes the actor again it is
quarantined (kept, logged, visible in metrics and the back office), and its caller gets an error instead of
waiting forever (Thespian's PoisonMessage).

What is kept of a quarantined message is its type and a redacted body (``redact``): numbers, flags and a few
known-harmless identifiers stay, every other text becomes its length. A licence scan carries the customer's
name, date of birth, address and licence number; a witness or login carries a PIN: none of it may reach a
log line or the store. The error keeps its type and where it was raised, not its text (an exception's text
often quotes the value that broke it).
"""

from __future__ import annotations

import logging
import math
import re
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec
import outcome
import trio

from hub.errors import HubError

log = logging.getLogger("hub.actor")
M = TypeVar("M")


class ActorCrashed(HubError):
    code = "internal_error"


class Call:
    """A request that wants an answer: the actor resolves it with ``reply`` or ``fail``.

    ``redelivered``: the actor crashed on it once and gets it again (it may have been applied already).
    ``on_done`` runs once when the call is answered or was never delivered, even if its caller stopped
    waiting (a timeout, a closed connection): what the caller marked "in progress" stays so until then.
    ``on_answer`` (see :meth:`Mailbox.submit`) gets the answered call, in the actor's task, unless the caller
    gave up first (:meth:`abandon`): a caller that needs no task of its own waiting for the answer.
    ``sent_at`` and ``deadline`` are the caller's (``trio.current_time()`` seconds)."""

    __slots__ = (
        "payload",
        "redelivered",
        "sent_at",
        "deadline",
        "_result",
        "_done",
        "_on_done",
        "_on_answer",
    )

    def __init__(
        self,
        payload: Any,
        on_done: Callable[[], None] | None = None,
        *,
        on_answer: Callable[[Call], None] | None = None,
        sent_at: float = 0.0,
        deadline: float = math.inf,
    ) -> None:
        self.payload = payload
        self.redelivered = False
        self.sent_at = sent_at
        self.deadline = deadline
        self._result: outcome.Outcome[Any] | None = None
        self._done: trio.Event | None = None  # made by the first waiter only: most calls have none
        self._on_done = on_done
        self._on_answer = on_answer

    def reply(self, value: Any) -> None:
        if self._result is None:
            self._result = outcome.Value(value)
            self._finish()

    def fail(self, exc: BaseException) -> None:
        if self._result is None:
            self._result = outcome.Error(exc)
            self._finish()

    def undelivered(self) -> None:
        """The call never reached the actor (its sender gave up first): run ``on_done`` now."""
        if self._on_done is not None:
            on_done, self._on_done = self._on_done, None
            on_done()

    def abandon(self) -> None:
        """The caller stopped waiting (its deadline passed): the answer, when it comes, goes to nobody."""
        self._on_answer = None

    def _finish(self) -> None:
        if self._done is not None:
            self._done.set()
        if self._on_answer is not None:
            on_answer, self._on_answer = self._on_answer, None
            try:
                on_answer(self)
            except Exception:  # the caller's trouble must never become the actor's crash (and a redelivery)
                log.exception("the caller of %s failed on its answer", type(self.payload).__name__)
        if self._on_done is not None:
            on_done, self._on_done = self._on_done, None
            on_done()

    @property
    def answered(self) -> bool:
        return self._result is not None

    def result(self) -> Any:
        """The answer (or the actor's error, raised); only once :attr:`answered`."""
        r = self._result
        if isinstance(r, outcome.Value):
            return r.value
        assert isinstance(r, outcome.Error)
        raise r.error

    async def wait(self) -> Any:
        if self._result is None:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()
        return self.result()

    def __repr__(self) -> str:
        return f"Call({self.payload!r})"


class QuarantinedMessage(msgspec.Struct, kw_only=True):
    actor: str
    at: datetime
    message: str  # "<type> <redacted body>", see redact()
    error: str  # exception type and where it was raised, never its text
    # False on records written before redaction existed (they kept the whole message): see redact_legacy
    redacted: bool = False


_LEGACY_TYPE = re.compile(r"msg=([A-Za-z_][A-Za-z0-9_]*)\(")


def redact_legacy(q: QuarantinedMessage) -> QuarantinedMessage:
    """A record from before redaction kept ``repr(message)`` whole (PINs, licence scans, token hashes):
    keep only the message's type and the exception's type."""
    if q.redacted:
        return q
    found = _LEGACY_TYPE.search(q.message)
    kind = found.group(1) if found else q.message.split("(", 1)[0][:40]
    return msgspec.structs.replace(
        q,
        message=f"{kind} [body removed: recorded before redaction]",
        error=q.error.split(":", 1)[0][:80],
        redacted=True,
    )


# text fields whose values say nothing about a person and help whoever reads the quarantine list
_HARMLESS_TEXT = frozenset(
    {
        "id",
        "type",
        "kind",
        "register_id",
        "device_id",
        "source",
        "reason_code",
        "tag",
        "package",
        "sku",
        "product_id",
        "unit",
        "tender",
        "decision",
        "topic",
        "job_id",
        "language",
    }
)
_SECRET_NAMES = ("pin", "token", "hash", "password", "secret", "key", "code")


def redact(value: object, name: str = "", depth: int = 0) -> object:
    """A JSON-able picture of ``value`` with nothing personal or secret left in it."""
    if depth > 6:
        return "…"
    lowered = name.lower()
    if any(word in lowered for word in _SECRET_NAMES) and lowered not in _HARMLESS_TEXT:
        return "[redacted]"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:64] if lowered in _HARMLESS_TEXT else f"[{len(value)} chars]"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes]"
    if isinstance(value, msgspec.Struct):
        return {f: redact(getattr(value, f), f, depth + 1) for f in value.__struct_fields__}
    if isinstance(value, dict):
        return {str(k): redact(v, str(k), depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, name, depth + 1) for v in list(value)[:50]]
    return f"[{type(value).__name__}]"


def describe_message(msg: object) -> str:
    """ "<type> <redacted body>" of an actor message: a Call's request's command, or the message itself."""
    payload = msg.payload if isinstance(msg, Call) else msg
    command = getattr(payload, "msg", None)  # hub.commands.Request wraps the client's command
    inner = command if isinstance(command, msgspec.Struct) else payload
    kind = type(inner).__name__
    body = redact(inner) if isinstance(inner, msgspec.Struct | dict) else {}
    register = getattr(payload, "register_id", "")
    where = f" register={register}" if isinstance(register, str) and register else ""
    return f"{kind}{where} {msgspec.json.encode(body).decode()}"[:2000]


def describe_error(exc: BaseException) -> str:
    """The exception's type and where it was raised: enough to find the bug, nothing of the data."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


class Mailbox(Generic[M]):
    def __init__(
        self,
        name: str,
        size: int = 64,
        *,
        metrics: Any = None,
        on_quarantine: Callable[[QuarantinedMessage], None] | None = None,
    ) -> None:
        self.name = name
        self._send, self._recv = trio.open_memory_channel[Any](size)
        self._metrics = metrics
        self._redeliver: Any = None
        self._crashing: tuple[Any, int] | None = None
        self.on_quarantine = on_quarantine
        self.quarantined: list[QuarantinedMessage] = []
        if metrics is not None:  # the series exist at 0 before the first poison message
            metrics.quarantined.labels(name)
            # read when scraped, not set per message: the depth costs nothing on the hot path
            metrics.mailbox_depth.labels(name).set_function(self.depth)

    def depth(self) -> int:
        return self._recv.statistics().current_buffer_used + (1 if self._redeliver is not None else 0)

    async def tell(self, msg: Any) -> None:
        await self._send.send(msg)

    def tell_nowait(self, msg: Any) -> bool:
        """Drop-if-full, for hot paths that must never block (device readings)."""
        try:
            self._send.send_nowait(msg)
        except trio.WouldBlock:
            return False
        return True

    def submit(self, call: Call) -> bool:
        """Queue ``call`` without waiting (False when the mailbox is full: then :meth:`deliver` it); its answer
        goes to its ``on_answer``. The caller keeps its deadline itself (hub/live/server.py)."""
        try:
            self._send.send_nowait(call)
        except trio.WouldBlock:
            return False
        return True

    async def deliver(self, call: Call) -> None:
        """Queue ``call``, waiting for room until its deadline; one that never got in is :meth:`Call.undelivered`."""
        delivered = False
        try:
            with trio.move_on_at(call.deadline):
                await self._send.send(call)
                delivered = True
        finally:
            if not delivered:  # never reached the actor (its deadline passed, or its connection closed)
                call.undelivered()

    async def call(
        self, payload: Any, *, timeout: float = 10.0, on_done: Callable[[], None] | None = None
    ) -> Any:
        """Send ``payload`` and wait for the answer (``trio.TooSlowError`` after ``timeout``); ``on_done``
        as :class:`Call` says."""
        c = Call(payload, on_done)
        delivered = False
        try:
            with trio.fail_after(timeout):
                await self._send.send(c)
                delivered = True
                return await c.wait()
        finally:
            if not delivered:  # never reached the actor: nothing is in progress
                c.undelivered()

    async def receive(self) -> Any:
        if self._redeliver is not None:
            msg, self._redeliver = self._redeliver, None
            if isinstance(msg, Call):
                msg.redelivered = True
            return msg
        return await self._recv.receive()

    def crashed(self, msg: Any, exc: BaseException) -> None:
        if self._crashing is not None and self._crashing[0] is msg:
            self._crashing = None
            q = QuarantinedMessage(
                actor=self.name,
                at=datetime.now(UTC),
                message=describe_message(msg),
                error=describe_error(exc),
                redacted=True,
            )
            self.quarantined.append(q)
            log.error(
                "actor %s: message crashed it twice; quarantined: %s (%s)",
                self.name,
                q.message[:200],
                q.error,
            )
            if self._metrics is not None:
                self._metrics.quarantined.labels(self.name).inc()
            if isinstance(msg, Call):
                msg.fail(
                    ActorCrashed("This request could not be processed and was set aside for the manager.")
                )
            if self.on_quarantine is not None:
                self.on_quarantine(q)
        else:
            self._crashing = (msg, 1)
            self._redeliver = msg

    def succeeded(self, msg: Any) -> None:
        if self._crashing is not None and self._crashing[0] is msg:
            self._crashing = None


async def serve_mailbox(mailbox: Mailbox[Any], handle: Callable[[Any], Awaitable[None]]) -> None:
    """The actor loop: one message at a time; a crash is recorded on the mailbox and re-raised."""
    while True:
        msg = await mailbox.receive()
        try:
            await handle(msg)
        except Exception as exc:
            mailbox.crashed(msg, exc)
            raise
        mailbox.succeeded(msg)
