"""The per-connection live-protocol state machine, sans-I/O: frames and facts in, frames and effects out.

Like h11 for HTTP, a :class:`Session` does no I/O: no trio, no socket, no LMDB. The server feeds it what a
connection received (a text frame, the clock) and what the server looked up or wrote for it (through
:class:`Lookups` and the ``paired``/``answered``/… methods); it answers with effects: frames to send and
typed things for the server to do (persist a pairing, audit a failure, dispatch a command to the register,
wait for the same id in flight, close with a code). It owns:

- the auth gate: an unpaired connection may only pair, say hello or ping; a command needs the login and
  the role its handler asks for, with the staff session this screen proved (a PIN typed here or its own
  resumed token: several screens of one register share the staff session only after a PIN on each);
- pairing decisions: the throttle (per connection and per address), the code check, the token;
- idempotency: a retried id is answered from the stored reply, a used id with another body is refused
  (``id_reused``), an id still being applied waits for it (and, woken, waits again if another waiter
  started applying it first);
- the access decision: made here once, carried by the ``Dispatch``/``RunBeside`` effect (the staff session
  the handler runs for); a login's answer tells the session which staff session this screen proved;
- expiry: an idle staff session ends, an unpaired connection that stays quiet is closed.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from hub import access as auth  # the I/O-free part of staff auth: sessions, devices, token hashes
from hub.access import HandlerSpec, check_access
from hub.errors import HubError, NotAuthenticated
from hub.live.frames import (
    PROTOCOL_VERSION,
    Command,
    Error,
    Frame,
    Hello,
    Login,
    Ok,
    Pair,
    Ping,
    ProtocolError,
    Welcome,
)
from hub.live.protocol import decode_command
from hub.live.replies import fingerprint, same_command

PAIRING_REFUSED = "That pairing code is not valid or has expired. Ask a manager for a new one."
UNKNOWN_CODE = "unknown, used or expired code"


# ---- effects: what the server does for the session ----
@dataclass(frozen=True)
class Send:
    """Send this frame (a frame object, or a stored reply already encoded)."""

    frame: Frame | bytes


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True)
class Attach:
    """This connection now serves ``register_id``: subscribe it to the register's topic and count it."""

    register_id: str


@dataclass(frozen=True)
class Rejected:
    """Count a refusal at the edge (the ``ws_rejected`` metric)."""

    reason: str


@dataclass(frozen=True)
class AuditPairingFailure:
    """Audit a refused pairing, in a transaction of its own."""

    reason: str
    peer: str
    device_name: str


@dataclass(frozen=True)
class PersistPairing:
    """Enrol the device with this code and token; then tell :meth:`Session.paired` (or, when the code was
    used in the meantime, :meth:`Session.pairing_refused`)."""

    msg_id: str
    code: str
    device_name: str
    token: str
    at: datetime


@dataclass(frozen=True)
class EndStaffSession:
    """The register's staff session is idle too long: the register drops it (and publishes)."""

    register_id: str


@dataclass(frozen=True)
class RunBeside:
    """Run a connection-scope handler now, beside the register actor (``cancel_payment`` while ``pay``
    waits for the card), for ``staff`` (the gate's decision); answer with :meth:`Session.answered` or
    :meth:`Session.failed`."""

    msg: Command
    spec: HandlerSpec
    register_id: str
    staff: auth.StaffSession | None


@dataclass(frozen=True)
class Dispatch:
    """Mark (register, id) in flight, send the command through the register actor's mailbox for ``staff``
    (the staff session the gate let it through with, None when it needs no login and this screen has
    none), then answer with :meth:`Session.answered` or :meth:`Session.failed`."""

    msg: Command
    spec: HandlerSpec
    register_id: str
    fingerprint: bytes
    staff: auth.StaffSession | None


@dataclass(frozen=True)
class WaitInFlight:
    """The same id is being applied now: wait until it is done, then call :meth:`Session.in_flight_done`."""

    msg: Command
    spec: HandlerSpec
    register_id: str
    fingerprint: bytes
    staff: auth.StaffSession | None


Effect = (
    Send
    | Close
    | Attach
    | Rejected
    | AuditPairingFailure
    | PersistPairing
    | EndStaffSession
    | RunBeside
    | Dispatch
    | WaitInFlight
)


class Lookups(Protocol):
    """What the session reads from the hub; the server answers from the store and the actors, tests
    from dictionaries."""

    def handler(self, cls: type[Command]) -> HandlerSpec | None: ...

    def pairing_code_valid(self, code: str, now: datetime) -> bool: ...

    def device(self, token_hash: bytes) -> auth.EnrolledDevice | None: ...

    def register_known(self, register_id: str) -> bool: ...

    def register_session(self, register_id: str) -> auth.StaffSession | None:
        """The staff session open at the register (idle or not)."""
        ...

    def session_by_token(self, token_hash: bytes) -> auth.StaffSession | None: ...

    def stored_reply(self, register_id: str, msg_id: str) -> tuple[bytes, bytes] | None:
        """The reply frame stored for this id and the fingerprint of the command that stored it."""
        ...

    def in_flight(self, register_id: str, msg_id: str) -> bool: ...


class PairingThrottle:
    """Sliding one-minute windows of pairing attempts, per connection and per source address (an 8-digit
    code must not be guessable at thousands of tries a second). One per server; clock given by the caller."""

    def __init__(self, per_connection: int, per_address: int, *, window: float = 60.0) -> None:
        self.per_connection = per_connection
        self.per_address = per_address
        self.window = window
        self._by_address: dict[str, deque[float]] = {}

    def allow(self, connection_attempts: deque[float], address: str, now: float) -> bool:
        self._prune(connection_attempts, now)
        by_addr = self._by_address.setdefault(address, deque())
        self._prune(by_addr, now)
        if len(connection_attempts) >= self.per_connection or len(by_addr) >= self.per_address:
            return False
        connection_attempts.append(now)
        by_addr.append(now)
        if len(self._by_address) > 4096:  # forget quiet addresses so the table stays small
            for a in [a for a, q in self._by_address.items() if not q or q[-1] < now - self.window]:
                del self._by_address[a]
        return True

    def _prune(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window:
            q.popleft()


@dataclass(frozen=True)
class SessionConfig:
    store_name: str
    boot_id: str
    demo: bool = False
    max_json_depth: int = 32
    unpaired_idle_seconds: float = 60.0
    staff_idle: timedelta = timedelta(minutes=30)


@dataclass
class Session:
    """One connection's live-protocol state. ``clock`` arguments are monotonic seconds (the throttle and
    the idle close), ``now`` arguments wall-clock datetimes (codes, staff sessions, server time)."""

    config: SessionConfig
    lookups: Lookups
    throttle: PairingThrottle
    peer: str = ""
    clock: float = 0.0  # when the connection opened
    new_token: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(32))
    register_id: str | None = None
    device_name: str = ""
    # the staff session this screen proved (a PIN typed here, or its own resumed token): never inherited
    session_hash: bytes | None = None
    last_heard: float = 0.0
    _pair_attempts: deque[float] = field(default_factory=deque)
    _throttle_audited: bool = False

    def __post_init__(self) -> None:
        self.last_heard = self.clock

    # ---- the connection's life ----
    def welcome(self, now: datetime) -> list[Effect]:
        c = self.config
        return [
            Send(
                Welcome(
                    protocol=PROTOCOL_VERSION,
                    store=c.store_name,
                    server_time=now.isoformat(),
                    demo=c.demo,
                    boot=c.boot_id,
                )
            )
        ]

    def tick(self, clock: float) -> list[Effect]:
        """Time passed: an unpaired connection quiet for ``unpaired_idle_seconds`` is closed (sockets that
        only hold memory are how a storm of idle connections fills the hub)."""
        if self.register_id is None and clock >= self.idle_deadline():
            return [Close(1008, "pair or say hello first")]
        return []

    def idle_deadline(self) -> float:
        """When :meth:`tick` closes this connection if it neither pairs nor says hello before."""
        return self.last_heard + self.config.unpaired_idle_seconds

    def heard(self, clock: float) -> None:
        """Something arrived on the connection (it restarts the unpaired idle wait)."""
        self.last_heard = clock

    def decode(self, data: str | bytes, clock: float) -> Command:
        """One frame received: the command, or ``ProtocolError`` (its ``frame()`` names the field)."""
        self.heard(clock)
        return decode_command(data, max_depth=self.config.max_json_depth)

    def receive(self, data: str | bytes, *, now: datetime, clock: float) -> list[Effect]:
        """One frame received: decode it and decide (a bad frame is answered; the connection stays)."""
        try:
            msg = self.decode(data, clock)
        except ProtocolError as exc:
            return [Send(exc.frame())]
        return self.handle(msg, now=now, clock=clock)

    def handle(self, msg: Command, *, now: datetime, clock: float) -> list[Effect]:
        """Decide what a decoded command needs: a frame now, or effects for the server."""
        out: list[Effect] = []
        try:
            out.extend(self._route(msg, now, clock, out))
        except HubError as exc:
            out.append(self.failed(msg.id, exc)[0])
        return out

    # ---- the gate ----
    def _route(self, msg: Command, now: datetime, clock: float, out: list[Effect]) -> list[Effect]:
        if isinstance(msg, Ping):
            return [Send(Ok(id=msg.id, result={"server_time": now.isoformat()}))]
        if isinstance(msg, Pair):
            return self._pair(msg, now, clock, out)
        if isinstance(msg, Hello):
            return self._hello(msg, now, out)
        register_id = self.register_id
        if register_id is None:
            raise NotAuthenticated(
                "This browser is not enrolled as a register yet: pair it with a code first.",
                code="not_paired",
            )
        spec = self.lookups.handler(type(msg))
        if spec is None:
            raise HubError(f"{type(msg).__name__} is not handled by this hub.", code="unsupported")
        # the one access decision (spec.login is the one "no login needed": login itself says so)
        staff = self.staff_session(now, out)
        check_access(spec, staff, type(msg).__name__)
        if spec.scope == "connection":  # beside the actor, not queued behind it
            return [RunBeside(msg, spec, register_id, staff)]
        if not spec.idempotent:  # applied again when retried: no stored reply, so nothing to fingerprint
            return [Dispatch(msg, spec, register_id, b"", staff)]
        fp = fingerprint(msg)
        if self.lookups.in_flight(register_id, msg.id):
            return [WaitInFlight(msg, spec, register_id, fp, staff)]
        frame = self._stored_reply(register_id, msg.id, fp)
        if frame is not None:
            return [Send(frame)]
        return [Dispatch(msg, spec, register_id, fp, staff)]

    def _stored_reply(self, register_id: str, msg_id: str, fp: bytes) -> bytes | None:
        found = self.lookups.stored_reply(register_id, msg_id)
        if found is None:
            return None
        same_command(msg_id, fp, found[1])  # id_reused when another command stored it
        return found[0]

    def in_flight_done(self, wait: WaitInFlight) -> list[Effect]:
        """The same id finished: answer from its stored reply, or apply it when it stored none. Several
        retries may have waited for it: when another one is applying it already, wait again (two waiters
        must never both apply it)."""
        if self.lookups.in_flight(wait.register_id, wait.msg.id):
            return [wait]
        try:
            frame = self._stored_reply(wait.register_id, wait.msg.id, wait.fingerprint)
        except HubError as exc:
            return self.failed(wait.msg.id, exc)
        if frame is not None:
            return [Send(frame)]
        return [Dispatch(wait.msg, wait.spec, wait.register_id, wait.fingerprint, wait.staff)]

    def answered(self, msg: Command, result: Any, committed_frame: bytes | None = None) -> list[Effect]:
        """A handler's result: the frame its commit stored (so a retry gets the same bytes), or ``ok``.
        A login's answer carries the staff session token: from now on this screen proved that session."""
        if (
            isinstance(msg, Login)
            and isinstance(result, dict)
            and isinstance(result.get("session_token"), str)
        ):
            self.session_hash = auth.token_hash(result["session_token"])
        return [Send(committed_frame if committed_frame is not None else Ok(id=msg.id, result=result))]

    def failed(self, msg_id: str | None, exc: HubError) -> list[Effect]:
        return [Send(Error(id=msg_id, code=exc.code, message=exc.message, field=exc.field))]

    def timed_out(self, msg_id: str) -> list[Effect]:
        return [Send(Error(id=msg_id, code="timeout", message="The hub took too long; try again."))]

    # ---- the staff session ----
    def staff_session(self, now: datetime, out: list[Effect] | None = None) -> auth.StaffSession | None:
        """The register's staff session if this connection proved it and it is not idle too long, else
        None. An idle one is ended (an ``EndStaffSession`` effect appended to ``out``)."""
        if self.register_id is None:
            return None
        live = self.lookups.register_session(self.register_id)
        if live is None:
            return None
        if now - live.last_seen > self.config.staff_idle:
            if out is not None:
                out.append(EndStaffSession(self.register_id))
            return None
        if self.session_hash is None or self.lookups.session_by_token(self.session_hash) is not live:
            return None
        return live

    # ---- pairing and hello ----
    def _pair(self, msg: Pair, now: datetime, clock: float, out: list[Effect]) -> list[Effect]:
        """Enrol with a one-time code. The code is checked before anything else: a used code never answers
        again, whatever the id (no stored reply holds a device token). Attempts are throttled per
        connection and per address; every refusal is audited."""
        name = msg.device_name or "browser"
        if not self.throttle.allow(self._pair_attempts, self.peer, clock):
            out.append(Rejected("pairing_rate"))
            if not self._throttle_audited:  # once per connection: a flood must not become a flood of writes
                self._throttle_audited = True
                out.append(AuditPairingFailure("too many attempts", self.peer, name))
            raise HubError(
                "Too many pairing attempts: wait a minute, then type the code again.", code="rate_limited"
            )
        if not self.lookups.pairing_code_valid(msg.code, now):
            return self.pairing_refused(msg.id, name)
        return [PersistPairing(msg.id, msg.code, name, self.new_token(), now)]

    def paired(self, persisted: PersistPairing, register_id: str, name: str) -> list[Effect]:
        """The enrolment was written: this connection serves the register, logged out, and gets its token."""
        out = self._attach(register_id, name)
        self.session_hash = None  # a new screen starts logged out
        out.append(
            Send(
                Ok(id=persisted.msg_id, result={"device_token": persisted.token, "register_id": register_id})
            )
        )
        return out

    def pairing_refused(self, msg_id: str, name: str, message: str = PAIRING_REFUSED) -> list[Effect]:
        """The code is unknown, used or expired (also when a concurrent pairing used it meanwhile)."""
        return [
            AuditPairingFailure(UNKNOWN_CODE, self.peer, name),
            Send(Error(id=msg_id, code="bad_pairing_code", message=message)),
        ]

    def _hello(self, msg: Hello, now: datetime, out: list[Effect]) -> list[Effect]:
        dev = self.lookups.device(auth.token_hash(msg.device_token))
        if dev is None or dev.revoked or not self.lookups.register_known(dev.register_id):
            raise NotAuthenticated(
                "This register's enrolment is not known here; pair it again.", code="not_paired"
            )
        effects = self._attach(dev.register_id, dev.name)
        # a screen that cannot prove the staff session starts logged out; other screens keep theirs
        self.session_hash = None
        staff = None
        if msg.session_token:
            h = auth.token_hash(msg.session_token)
            self.session_hash = h
            staff = self.staff_session(now, out)
            if staff is None:
                self.session_hash = None
        effects.append(
            Send(
                Ok(
                    id=msg.id,
                    result={
                        "register_id": dev.register_id,
                        "resumed": staff is not None,
                        "staff": None
                        if staff is None
                        else {"id": staff.staff_id, "name": staff.name, "role": staff.role},
                    },
                )
            )
        )
        return effects

    def _attach(self, register_id: str, name: str) -> list[Effect]:
        if self.register_id == register_id:
            return []
        self.register_id = register_id
        self.device_name = name
        return [Attach(register_id)]
