"""The register actor: one per register. It serialises everything done at that register, applies it
through the domain core and the store, and publishes the register's state as snapshots.

Foundation commands handled here: login, logout, pairing codes, incidents. The sale adds its own.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from hub import audit, auth
from hub.access import HandlerTable, check_access
from hub.actor import Call, Mailbox, serve_mailbox
from hub.commands import Request
from hub.config import RegisterSection, StoreConfig
from hub.errors import BadRequest, HubError, NotAuthenticated
from hub.live.frames import Command, CreatePairingCode, Login, Logout, ReportIncident
from hub.store.env import next_seq, put
from hub.store.keys import u64

if TYPE_CHECKING:
    from hub.actor import QuarantinedMessage
    from hub.live.replies import Replies
    from hub.metrics import Metrics
    from hub.sale.card import CardPayment
    from hub.sale.context import RegisterSale
    from hub.services import Services
    from hub.store.env import Store
    from hub.store.writer import StoreWriter

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()

log = logging.getLogger("actors.register")


class Incident(msgspec.Struct, kw_only=True):
    seq: int
    at: datetime
    register: str
    staff: str
    category: str
    description: str


class RegisterState:
    """What a register holds in memory; only its actor changes it (others ask through the actor's methods).

    ``sale``: the cart, customer and parked carts (hub/sale), read from the store on first use and put back
    as it was when a command fails. ``card_payment``: the terminal's progress shown on the screen.
    ``last_pick``: a picker's last scan (hub/orders). ``screens``: the WebSocket connections attached."""

    __slots__ = ("card_payment", "last_pick", "sale", "screens")

    def __init__(self) -> None:
        self.sale: RegisterSale | None = None
        self.card_payment: CardPayment | None = None
        self.last_pick: dict[str, Any] | None = None
        self.screens = 0


@dataclass(frozen=True, slots=True)
class RegisterParts:
    """What a register actor (and a snapshot provider, through ``actor.parts``) reads of the running hub,
    not the hub itself. ``Hub.run`` builds one for all its registers once the store is open and its writer
    runs (both stay open until ``run`` returns, after the registers stopped), so ``store`` and ``writer``
    are the open ones, not accessors. It has what ``hub.services.HubParts`` names, and what a command's
    ``Request`` carries (``Request.for_hub`` takes it)."""

    store: Store
    writer: StoreWriter
    config: StoreConfig
    services: Services
    metrics: Metrics
    registers: Mapping[str, RegisterActor]
    sessions: dict[bytes, auth.StaffSession]  # the hub's table: a login adds to it, a logout drops from it
    replies: Replies
    publish: Callable[[str, Any], None]  # a topic's new state, or a callable building it when sent
    record_quarantine: Callable[[QuarantinedMessage], None]


class RegisterActor:
    def __init__(self, parts: RegisterParts, config: RegisterSection) -> None:
        self.parts = parts
        self.config = config
        self.id = config.id
        self.mailbox: Mailbox[Call] = Mailbox(
            f"register:{self.id}", 128, metrics=parts.metrics, on_quarantine=parts.record_quarantine
        )
        self.session: auth.StaffSession | None = None
        self.state = RegisterState()

    @property
    def connected(self) -> int:
        """How many screens are attached to this register now."""
        return self.state.screens

    def screen_attached(self) -> None:
        self.state.screens += 1
        self.publish()

    def screen_detached(self) -> None:
        self.state.screens = max(0, self.state.screens - 1)
        self.publish()

    @property
    def sale(self) -> RegisterSale | None:
        """The sale this register holds in memory (None until the sale feature first reads it)."""
        return self.state.sale

    def set_sale(self, sale: RegisterSale | None) -> None:
        """A new sale state, e.g. the cleared one after a committed sale (None: read it from the store
        again on next use)."""
        self.state.sale = sale

    @property
    def card_payment(self) -> CardPayment | None:
        return self.state.card_payment

    def show_payment(self, payment: CardPayment | None) -> None:
        """The terminal's progress on the screen (None: nothing to show)."""
        self.state.card_payment = payment
        self.publish()

    @property
    def last_pick(self) -> dict[str, Any] | None:
        return self.state.last_pick

    def show_pick(self, outcome: dict[str, Any]) -> None:
        """A picker's last scan, as the picker screen shows it."""
        self.state.last_pick = outcome
        self.publish()

    @property
    def topic(self) -> str:
        return f"register:{self.id}"

    async def run(self, *, task_status: trio.TaskStatus[RegisterActor] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        self.publish()
        await serve_mailbox(self.mailbox, self._handle)

    async def _handle(self, call: Call) -> None:
        """Apply one command for the staff session its gate decided (the live session for a screen,
        :meth:`device_request` for a serial device): access is not decided again here."""
        req: Request = call.payload
        if call.redelivered:  # after a crash: it may have been committed before the actor died
            try:
                parts = self.parts
                frame = parts.replies.lookup(parts.store, self.id, req.msg.id, req.fingerprint)
            except HubError as exc:
                call.fail(exc)
                return
            if frame is not None:
                req.committed_frame = frame
                call.reply(None)
                return
        spec = self.parts.services.handlers.get(type(req.msg))
        if spec is None:  # a command of a feature this hub does not run (a test's call)
            call.fail(HubError(f"{type(req.msg).__name__} is not handled by this hub.", code="unsupported"))
            return
        if spec.login and req.session is not self.session:
            # the staff session it was let through with ended while it waited in the mailbox (a logout)
            call.fail(NotAuthenticated("Log in with your staff ID and PIN first.", code="not_logged_in"))
            return
        # what the register holds in memory goes back to this point if the command fails, whatever the
        # failure (a refused or failed commit, a bug): a half-applied change must not outlive its command
        if self.state.sale is None:  # read once (and again after a committed sale or a failed command only)
            for load in self.parts.services.register_loaders:  # the sale's loader is the one there is
                load(self)
        saved = self.state.sale.checkpoint() if self.state.sale is not None else None
        try:
            result = await spec.fn(req, req.msg)
        except HubError as exc:
            self._roll_back(saved)
            call.fail(exc)
        except BaseException:
            self._roll_back(saved)
            raise
        else:
            call.reply(result)
        if req.session is not None and self.session is req.session:
            self.session.last_seen = datetime.now(UTC)

    def device_request(self, msg: Command) -> Request:
        """The access decision for a serial device of this register (a scanner): it acts for whoever is
        logged in here, as a screen's live session decides for that screen."""
        spec = self.parts.services.handlers.get(type(msg))
        if spec is None:  # a serial scan on a hub without the sale
            raise HubError(f"{type(msg).__name__} is not handled by this hub.", code="unsupported")
        live = self.live_session()
        check_access(spec, live, _what(msg))
        return Request.for_hub(self.parts, msg, self.id, live)

    def _roll_back(self, saved: RegisterSale | None) -> None:
        if saved is None:
            self.state.sale = None  # created by the failed command: read again from the store
        elif self.state.sale is not None:
            self.state.sale.restore(saved)
        else:
            self.state.sale = saved
        self.publish()

    def live_session(self) -> auth.StaffSession | None:
        s = self.session
        if s is None:
            return None
        idle = timedelta(minutes=self.parts.config.store.session_idle_minutes)
        if datetime.now(UTC) - s.last_seen > idle:
            self.session = None
            auth.drop_session(self.parts.sessions, s)  # its tokens no longer open REST either
            self.publish()
            return None
        return s

    def snapshot(self) -> dict[str, Any]:
        s = self.session
        state: dict[str, Any] = {
            "register": self.id,
            "name": self.config.name or self.id,
            "staff": None if s is None else {"id": s.staff_id, "name": s.name, "role": s.role},
            "connected": self.connected,
        }
        for provider in self.parts.services.snapshot_providers:
            state.update(provider(self))
        return state

    def publish(self) -> None:
        self.parts.publish(self.topic, self.snapshot)  # built lazily, when a connection sends it


def _what(msg: Any) -> str:
    return type(msg).__name__.replace("_", " ")


# ---- foundation handlers ----


@HANDLERS.handles(Login, login=False, idempotent=False)
async def login(req: Request, msg: Login) -> dict[str, Any]:
    actor = req.register
    m = await auth.authenticate(req, msg.staff, msg.pin, register_id=req.register_id, purpose="login")
    now = datetime.now(UTC)
    token = secrets.token_urlsafe(24)
    live = actor.live_session()
    if live is not None and live.staff_id == m.id:
        # a second screen of this register, the same person, after their PIN: it joins the session
        session = live
        session.last_seen = now
    else:
        if live is not None:
            auth.drop_session(req.sessions, live)  # another person takes the register over
        session = auth.StaffSession(
            staff_id=m.id,
            name=m.name,
            role=m.role,
            register_id=req.register_id,
            token_hash=auth.token_hash(token),
            last_seen=now,
        )
        actor.session = session
    req.sessions[auth.token_hash(token)] = session
    actor.publish()  # the screen that typed the PIN learns its token from this answer (Session.answered)
    return {"staff": {"id": m.id, "name": m.name, "role": m.role}, "session_token": token}


@HANDLERS.handles(Logout, idempotent=False)
async def logout(req: Request, msg: Logout) -> dict[str, Any]:
    actor = req.register
    if actor.session is not None:
        auth.drop_session(req.sessions, actor.session)
        staff = actor.session.staff_id
        await req.writer.write(
            lambda txn: audit.append(txn, req.store, "logout", staff=staff, register=req.register_id)
        )
    actor.session = None
    actor.publish()
    return {}


@HANDLERS.handles(CreatePairingCode, role="manager", idempotent=False)
async def create_pairing_code(req: Request, msg: CreatePairingCode) -> dict[str, Any]:
    """Not a stored reply: the code is a secret shown once (a retried id makes another code; the unused one
    expires)."""
    if msg.register_id not in req.registers:
        raise BadRequest(f"There is no register {msg.register_id!r} in this store.", field="register_id")
    now = datetime.now(UTC)

    def fn(txn: Any) -> dict[str, Any]:
        pc = auth.create_pairing_code(txn, req.store, msg.register_id, by=req.staff_id, now=now)
        return {"code": pc.code, "register_id": pc.register_id, "expires_at": pc.expires_at.isoformat()}

    return await req.writer.write(fn, label="create_pairing_code")


@HANDLERS.handles(ReportIncident)
async def report_incident(req: Request, msg: ReportIncident) -> dict[str, Any]:
    store = req.store
    now = datetime.now(UTC)

    def fn(txn: Any) -> dict[str, Any]:
        seq = next_seq(txn, store, "incidents")
        inc = Incident(
            seq=seq,
            at=now,
            register=req.register_id,
            staff=req.staff_id,
            category=msg.category,
            description=msg.description,
        )
        put(txn, store, "incidents", u64(seq), inc)
        audit.append(
            txn,
            store,
            "incident_reported",
            staff=req.staff_id,
            register=req.register_id,
            detail={"incident": seq, "category": msg.category},
        )
        return {"incident": seq}

    return await req.commit(fn)
