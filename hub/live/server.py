"""The live-protocol server: trio-websocket transport around the sans-I/O session (hub/live/session.py).

It accepts (Origin allow-list, connection limit), reads frames, feeds them to the connection's
:class:`~hub.live.session.Session` and executes the effects it answers with (send, persist a pairing, audit,
dispatch to the register actor, wait for an id in flight, close); ``ConnectionClosed`` is handled here and
nowhere else. A frame is decided on the reading task itself; a register command is queued in the actor's
mailbox and answered from the actor's task (``Mailbox.submit``), a missed deadline by one watcher per
connection: no task, Event or cancel scope per message. Only effects that wait get a task of their own. Each
connection is isolated: its handler catches everything, so a failing connection closes itself and never the
server. Each connection has its own bounded outbox task, so one slow browser never blocks the register actors
or other browsers; snapshots are coalesced (only the newest per topic is sent) and, when one is due as a reply
goes out, it travels in the reply's frame (``hub/live/frames.py``: one WebSocket message instead of two). A
snapshot that has to wait (its interval, or this connection's commands in flight) waits on the hub-wide tick
(``hub/ticker.py``), not on a timer of its own: a connection with nothing pending costs no wakeup at all.
Heartbeat pings detect dead peers. Resources are bounded at the edge: a connection limit, an idle timeout
for connections that never pair, a frame size limit (1009), a JSON nesting limit checked before decoding.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

from hub import auth
from hub.access import HandlerSpec
from hub.actor import Call
from hub.commands import Request
from hub.errors import HubError, NotAuthenticated
from hub.live.edge import Gate, origin_allowed, ssl_context
from hub.live.frames import Command, Error, Ok, ProtocolError, encode, with_snapshot
from hub.live.session import (
    Attach,
    AuditPairingFailure,
    Close,
    Dispatch,
    Effect,
    EndStaffSession,
    PersistPairing,
    Rejected,
    RunBeside,
    Send,
    Session,
    WaitInFlight,
)
from hub.ticker import Ticker

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("hub.ws")
OUTBOX_SIZE = 256
SNAPSHOT_INTERVAL = 0.04  # at most 25 snapshots a second per topic and connection
IN_FLIGHT_PER_CONNECTION = 16
# how long a due snapshot may wait for this connection's commands in flight (their changes coalesce into
# it): at 50 busy registers fewer snapshots are built and sent, and a reply never competes with one
SNAPSHOT_HOLD = SNAPSHOT_INTERVAL
# the hub-wide tick a waiting snapshot is looked at again on (hub/ticker.py): one timer for every connection
SNAPSHOT_TICK = SNAPSHOT_HOLD / 4


class _SnapshotsDue:
    """The outbox item that tells the sender to send this connection's pending snapshots now."""

    __slots__ = ()


SNAPSHOTS_DUE = _SnapshotsDue()


# trio-websocket has no hook for this: its private close handler is wrapped (checked by tests/live)
_library_close_event = WebSocketConnection._handle_close_connection_event  # noqa: SLF001


async def _close_event_tells_the_peer(self: WebSocketConnection, event: CloseConnection) -> None:
    """wsproto reports a frame it cannot accept (invalid UTF-8 in a text frame: 1007, RFC 6455 8.1) as a close
    event while the connection is still open, and trio-websocket then drops TCP without a word; send the
    close frame with its code first, as the RFC asks."""
    if self._wsproto.state == ConnectionState.OPEN and event.code in (1002, 1007, 1009):
        try:
            await self._send(CloseConnection(code=event.code, reason=(event.reason or "")[:120]))
        except Exception:  # the peer is gone already: nothing to tell
            log.debug("could not send close %s", event.code, exc_info=True)
    await _library_close_event(self, event)


WebSocketConnection._handle_close_connection_event = _close_event_tells_the_peer  # type: ignore[method-assign]  # noqa: SLF001


def _frame_text(item: Any) -> str:
    if isinstance(item, bytes):
        return item.decode()
    if isinstance(item, str):
        return item
    return encode(item)


async def serve_ws(hub: Hub, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    s = hub.config.server
    gate = Gate(hub)
    ticker = Ticker(SNAPSHOT_TICK)
    async with trio.open_nursery() as handlers:
        handlers.start_soon(gate.return_memory_after_storms)
        handlers.start_soon(ticker.run)

        async def handler(request: WebSocketRequest) -> None:
            await handle_request(hub, request, gate, ticker)

        server = await handlers.start(
            lambda task_status: serve_websocket(
                handler,
                s.host,
                s.ws_port,
                ssl_context(hub),
                handler_nursery=handlers,
                max_message_size=s.max_frame_bytes,
                message_queue_size=4,
                connect_timeout=10,
                disconnect_timeout=5,
                task_status=task_status,
            )
        )
        task_status.started(server.port)


async def handle_request(
    hub: Hub, request: WebSocketRequest, gate: Gate, ticker: Ticker | None = None
) -> None:
    try:
        # wsproto keeps the Host header apart from the others
        host_header = str(getattr(getattr(request, "_event", None), "host", "") or "")
        if not origin_allowed(hub, request.headers, host_header):
            hub.metrics.ws_rejected.labels("origin").inc()
            await request.reject(403, body=b"origin not allowed")
            return
        if gate.open >= gate.max_connections:
            hub.metrics.ws_rejected.labels("limit").inc()
            await request.reject(503, body=b"too many connections")
            return
    except Exception:  # a broken handshake is that client's problem only
        log.debug("handshake failed", exc_info=True)
        return
    gate.open += 1  # taken before the accept awaits: concurrent handshakes cannot all slip under the limit
    gate.peak = max(gate.peak, gate.open)
    try:
        ws = await request.accept()
    except Exception:
        gate.closed()
        log.debug("handshake failed", exc_info=True)
        return
    conn = Connection(hub, ws, gate, ticker)
    hub.metrics.ws_connections.inc()
    try:
        await conn.run()
    except Exception:
        log.exception("connection handler failed; closing that connection only")
        with trio.move_on_after(1):
            await ws.aclose(1011, "internal error")
    finally:
        hub.metrics.ws_connections.dec()
        conn.detach()
        gate.closed()


class HubLookups:
    """What a session reads, answered from the hub's store, actors and replies."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def handler(self, cls: type[Command]) -> HandlerSpec | None:
        return self.hub.services.handlers.get(cls)

    def pairing_code_valid(self, code: str, now: datetime) -> bool:
        return auth.pairing_code_valid(self.hub.store, code, now)

    def device(self, token_hash: bytes) -> auth.EnrolledDevice | None:
        return self.hub.store.get("devices", token_hash, auth.EnrolledDevice)

    def register_known(self, register_id: str) -> bool:
        return register_id in self.hub.registers

    def register_session(self, register_id: str) -> auth.StaffSession | None:
        return self.hub.registers[register_id].session

    def session_by_token(self, token_hash: bytes) -> auth.StaffSession | None:
        return self.hub.sessions.get(token_hash)

    def stored_reply(self, register_id: str, msg_id: str) -> tuple[bytes, bytes] | None:
        return self.hub.replies.find(self.hub.store, register_id, msg_id)

    def in_flight(self, register_id: str, msg_id: str) -> bool:
        return (register_id, msg_id) in self.hub.replies.in_flight


class Connection:
    """One WebSocket: its session, its outbox (replies and snapshots, one sender task), and the effects it
    executes."""

    def __init__(
        self, hub: Hub, ws: WebSocketConnection, gate: Gate | None = None, ticker: Ticker | None = None
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.gate = gate or Gate(hub)
        # the server's ticker; a connection made without one (a test's) runs its own
        self._own_ticker = ticker is None
        self.ticker = ticker or Ticker(SNAPSHOT_TICK)
        remote = getattr(ws, "remote", None)
        self.peer = str(getattr(remote, "address", remote) or "")
        self.session = Session(
            config=self.gate.session_config,
            lookups=HubLookups(hub),
            throttle=self.gate.pairing,
            peer=self.peer,
            clock=trio.current_time(),
        )
        self._out_send, self._out_recv = trio.open_memory_channel[Any](OUTBOX_SIZE)
        # the topics changed since the last snapshot sent (coalesced: the newest state is taken when sent),
        # when the next may go (SNAPSHOT_INTERVAL after the last), until when a due one waits for this
        # connection's commands in flight (SNAPSHOT_HOLD), and whether SNAPSHOTS_DUE is in the outbox
        self._snap_pending: list[str] = []
        self._snap_next_at = -math.inf
        self._snap_held_until = math.inf
        self._snap_queued = False
        self._limiter = trio.Semaphore(IN_FLIGHT_PER_CONNECTION)
        self._nursery: trio.Nursery | None = None
        # the commands queued at the register actor and not answered yet, and the deadline watched for them
        self._calls: set[Call] = set()
        self._watching_until = math.inf
        self._deadline_moved = trio.Event()

    @property
    def register_id(self) -> str | None:
        return self.session.register_id

    # ---- outbound ----
    def push_snapshot(self, topic: str) -> None:
        """A topic this connection follows changed (called on the publisher's task: nothing here waits).
        The snapshot is built when it is sent, so a burst of changes costs one build; it goes in the next
        reply's frame if that leaves when it is due, else on its own once due (:meth:`tick`)."""
        pending = self._snap_pending
        if topic in pending:  # coalesce: already arranged
            return
        pending.append(topic)
        if len(pending) > 1 or self._snap_queued:  # the first pending one arranged it already
            return
        now = trio.current_time()
        self._snap_held_until = max(now, self._snap_next_at) + SNAPSHOT_HOLD
        if not self.tick(now):
            self.ticker.want(self)

    def tick(self, now: float) -> bool:
        """The hub-wide tick (and a change): queue the pending snapshots once due, and, while this
        connection's commands are still in flight, not before their replies or the hold ends (their changes
        coalesce into it, and the next reply carries it). True when nothing is left to wait for."""
        if not self._snap_pending or self._snap_queued:
            return True
        if now < self._snap_next_at:
            return False
        if now < self._snap_held_until and self._commands_in_flight():
            return False
        self._snap_queued = True
        self.send_frame(SNAPSHOTS_DUE)
        return True

    def _commands_in_flight(self) -> bool:
        """Being handled, or the reply not out yet."""
        return (
            self._limiter.value < IN_FLIGHT_PER_CONNECTION
            or self._out_recv.statistics().current_buffer_used > 0
        )

    def send_frame(self, frame: Any) -> None:
        if isinstance(frame, Error):
            self.hub.metrics.message_errors.labels(frame.code).inc()
        try:
            self._out_send.send_nowait(frame)
        except trio.WouldBlock:
            # a browser that cannot keep up is disconnected; it reconnects and takes the newest snapshot
            log.warning("connection %s too slow; closing it", self.register_id)
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _sender(self) -> None:
        """Replies, errors, the welcome and snapshots, in order, as soon as they are ready. A snapshot is
        built when it is sent and a topic is sent at most every SNAPSHOT_INTERVAL: a screen needs no more,
        and a busy hub spends its time on the next scan instead. One that is due when a reply goes out
        travels in that reply's frame (:func:`~hub.live.frames.with_snapshot`); the stored reply stays the
        bare reply (a retry gets it with the snapshot due then, if any)."""
        pending = self._snap_pending
        async for item in self._out_recv:
            if item is SNAPSHOTS_DUE:
                self._snap_queued = False
                await self._send_snapshots()
                continue
            text = _frame_text(item)
            if pending and isinstance(item, bytes | Ok | Error):
                now = trio.current_time()
                if now >= self._snap_next_at:
                    t = self.hub.topics.get(pending.pop(0))
                    if t is not None:
                        self._snap_next_at = now + SNAPSHOT_INTERVAL
                        text = with_snapshot(text, t.encoded())
            await self.ws.send_message(text)

    async def _send_snapshots(self) -> None:
        """The pending snapshots, each in a frame of its own (a reply may have taken them meanwhile)."""
        pending = self._snap_pending
        if not pending:
            return
        now = trio.current_time()
        if now < self._snap_next_at:  # a reply carried one since this was queued: wait for the interval
            self._snap_held_until = self._snap_next_at + SNAPSHOT_HOLD
            self.ticker.want(self)
            return
        self._snap_next_at = now + SNAPSHOT_INTERVAL
        while pending:
            t = self.hub.topics.get(pending.pop(0))
            if t is not None:
                await self.ws.send_message(t.encoded())

    async def _unpaired_watch(self) -> None:
        """Close a connection that neither pairs nor says hello within the idle time (the session decides)."""
        while self.session.register_id is None:
            effects = self.session.tick(trio.current_time())
            if effects:
                log.info("unpaired connection from %s idle; closing", self.peer)
                await self._execute(effects)
                return
            await trio.sleep(min(max(self.session.idle_deadline() - trio.current_time(), 0.0), 1.0))

    async def _heartbeat(self) -> None:
        interval = self.hub.config.server.heartbeat_seconds
        while True:
            await trio.sleep(interval)
            with trio.move_on_after(interval) as scope:
                await self.ws.ping(secrets.token_bytes(8))
            if scope.cancelled_caught:
                log.info("connection %s missed a heartbeat; closing", self.register_id)
                await self.ws.aclose(1001, "heartbeat timeout")
                return

    # ---- lifecycle ----
    async def run(self) -> None:
        await self._execute(self.session.welcome(datetime.now(UTC)))
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._sender)
                if self._own_ticker:
                    nursery.start_soon(self.ticker.run)
                nursery.start_soon(self._heartbeat)
                nursery.start_soon(self._unpaired_watch)
                nursery.start_soon(self._expire_calls)
                limiter = self._limiter
                while True:
                    try:
                        message = await self.ws.get_message()
                    except ConnectionClosed:
                        break
                    try:
                        limiter.acquire_nowait()
                    except trio.WouldBlock:  # IN_FLIGHT_PER_CONNECTION answers outstanding: read no more
                        await limiter.acquire()
                    self._receive(message)
                nursery.cancel_scope.cancel()
        except* ConnectionClosed:
            pass

    def detach(self) -> None:
        self.hub.unsubscribe(self)
        self.ticker.drop(self)
        if self.register_id and self.register_id in self.hub.registers:
            actor = self.hub.registers[self.register_id]
            actor.screen_detached()
        self._out_send.close()

    def _receive(self, message: str | bytes) -> None:
        """One frame, decided on the reading task itself: no task per message. What answers at once is sent,
        a register command is queued in the actor's mailbox and answered from there (:meth:`_answered`);
        only what must wait (a pairing write, a handler beside the actor, an id in flight) gets a task, so
        a card payment waiting for the terminal never holds up a cancel on the same connection."""
        clock = trio.current_time()
        session = self.session
        try:
            msg = session.decode(message, clock)
        except ProtocolError as exc:
            self.send_frame(exc.frame())
            self._done("invalid", clock)
            return
        effects = session.handle(msg, now=datetime.now(UTC), clock=clock)
        for i, effect in enumerate(effects):
            if isinstance(effect, Send):
                self.send_frame(effect.frame)
            elif isinstance(effect, Dispatch):  # the last effect when there is one
                self._dispatch(effect, clock)
                return
            elif isinstance(effect, Attach | Rejected | EndStaffSession):
                self._apply_now(effect)
            else:
                assert self._nursery is not None
                self._nursery.start_soon(self._handle_rest, msg, effects[i:], clock)
                return
        self._done(msg.__struct_config__.tag, clock)

    def _done(self, kind: Any, clock: float) -> None:
        """A message is answered (or given up): its slot is free, its time observed."""
        self._limiter.release()
        self.gate.message_timer(str(kind)).observe(trio.current_time() - clock)

    async def _handle_rest(self, msg: Command, effects: list[Effect], clock: float) -> None:
        """The effects of one message that wait (in order), on a task of their own."""
        try:
            try:
                dispatch = await self._execute(effects)
            except HubError as exc:  # a write the session asked for was refused (a full disk)
                dispatch = await self._execute(self.session.failed(msg.id, exc))
            except trio.TooSlowError:
                dispatch = await self._execute(self.session.timed_out(msg.id))
        except BaseException:
            self._done(msg.__struct_config__.tag, clock)
            raise
        if dispatch is not None:
            self._dispatch(dispatch, clock)  # it frees the slot when answered
        else:
            self._done(msg.__struct_config__.tag, clock)

    # ---- effects ----
    async def _execute(self, effects: list[Effect]) -> Dispatch | None:
        """Apply effects in order; a ``Dispatch`` (always the last) is handed back to be queued."""
        for effect in effects:
            if isinstance(effect, Dispatch):
                return effect
            found = await self._apply(effect)
            if found is not None:
                return found
        return None

    def _apply_now(self, effect: Attach | Rejected | EndStaffSession) -> None:
        match effect:
            case Attach(register_id=register_id):
                self._attach(register_id)
            case Rejected(reason=reason):
                self.hub.metrics.ws_rejected.labels(reason).inc()
            case EndStaffSession(register_id=register_id):
                self._end_staff_session(register_id)

    async def _apply(self, effect: Effect) -> Dispatch | None:
        hub = self.hub
        match effect:
            case Send(frame=frame):
                self.send_frame(frame)
            case Close(code=code, reason=reason):
                await self.ws.aclose(code, reason)
            case Attach() | Rejected() | EndStaffSession():
                self._apply_now(effect)
            case AuditPairingFailure():
                await hub.writer.write(
                    lambda txn: auth.record_pairing_failure(
                        txn, hub.store, reason=effect.reason, peer=effect.peer, device_name=effect.device_name
                    ),
                    label="pairing_failed",
                )
            case PersistPairing():
                return await self._persist_pairing(effect)
            case RunBeside():
                return await self._run_beside(effect)
            case WaitInFlight():
                pending = hub.replies.in_flight.get((effect.register_id, effect.msg.id))
                if pending is not None:
                    await pending.wait()
                return await self._execute(self.session.in_flight_done(effect))
        return None

    async def _persist_pairing(self, effect: PersistPairing) -> Dispatch | None:
        hub = self.hub
        try:
            dev = await hub.writer.write(
                lambda txn: auth.enroll(
                    txn, hub.store, effect.code, effect.device_name, now=effect.at, token=effect.token
                ),
                label="pair",
            )
        except NotAuthenticated as exc:  # used by a concurrent pairing in the meantime
            return await self._execute(
                self.session.pairing_refused(effect.msg_id, effect.device_name, exc.message)
            )
        return await self._execute(self.session.paired(effect, dev.register_id, dev.name))

    async def _run_beside(self, effect: RunBeside) -> Dispatch | None:
        """A connection-scope handler, run now beside the register actor (``cancel_payment``)."""
        msg = effect.msg
        req = Request.for_hub(self.hub, msg, effect.register_id, effect.staff)
        try:
            result = await effect.spec.fn(req, msg)
            effects = self.session.answered(msg, result, req.committed_frame)
        except HubError as exc:
            effects = self.session.failed(msg.id, exc)
        except trio.TooSlowError:
            effects = self.session.timed_out(msg.id)
        return await self._execute(effects)

    # ---- commands through the register actor ----
    def _dispatch(self, effect: Dispatch, clock: float) -> None:
        """Queue a command in its register actor's mailbox, its id marked in flight; nothing waits for it
        here: the actor's answer comes back through :meth:`_answered`, a missed deadline through
        :meth:`_expire_calls`."""
        msg, register_id = effect.msg, effect.register_id
        req = Request.for_hub(self.hub, msg, register_id, effect.staff, fingerprint=effect.fingerprint)
        call = Call(
            req,
            self._in_flight(register_id, msg.id),
            on_answer=self._answered,
            sent_at=clock,  # when the frame arrived: the message timer's start
            deadline=trio.current_time() + effect.spec.timeout_s,  # from now: a retry may have waited
        )
        self._calls.add(call)
        if call.deadline < self._watching_until:
            self._deadline_moved.set()
        mailbox = self.hub.registers[register_id].mailbox
        if not mailbox.submit(call):  # full: wait for room on a task, until the deadline
            assert self._nursery is not None
            self._nursery.start_soon(mailbox.deliver, call)

    def _answered(self, call: Call) -> None:
        """The actor answered (called in the actor's task: nothing here may wait)."""
        self._calls.discard(call)
        req: Request = call.payload
        msg = req.msg
        try:
            try:
                effects = self.session.answered(msg, call.result(), req.committed_frame)
            except HubError as exc:
                effects = self.session.failed(msg.id, exc)
            self._send_all(effects)
        finally:
            self._done(msg.__struct_config__.tag, call.sent_at)

    async def _expire_calls(self) -> None:
        """Answer ``timeout`` for a command the actor has not answered by its deadline (the actor may still
        apply it later: its id stays in flight until then, and its answer goes to nobody). One sleep for all
        of the connection's calls, woken only when a call has an earlier deadline than the one slept to."""
        while True:
            now = trio.current_time()
            for call in [c for c in self._calls if c.deadline <= now]:
                self._calls.discard(call)
                call.abandon()
                req: Request = call.payload
                self._send_all(self.session.timed_out(req.msg.id))
                self._done(req.msg.__struct_config__.tag, call.sent_at)
            self._watching_until = min((c.deadline for c in self._calls), default=math.inf)
            with trio.move_on_at(self._watching_until):
                await self._deadline_moved.wait()
                self._deadline_moved = trio.Event()

    def _send_all(self, effects: list[Effect]) -> None:
        """Effects that are frames only (an answer, an error, a timeout)."""
        for effect in effects:
            assert isinstance(effect, Send)
            self.send_frame(effect.frame)

    def _in_flight(self, register_id: str, msg_id: str) -> Callable[[], None]:
        """Mark (register, id) in flight now; the returned function ends it. It is called when the actor
        has answered (or the call never reached it), not when this connection stops waiting: a retry
        after a timeout or a reconnect must still wait for the first attempt queued in the mailbox."""
        in_flight, key = self.hub.replies.in_flight, (register_id, msg_id)
        done = in_flight[key] = trio.Event()

        def finished() -> None:
            done.set()
            if in_flight.get(key) is done:
                del in_flight[key]

        return finished

    def _attach(self, register_id: str) -> None:
        self.hub.unsubscribe(self)
        actor = self.hub.registers[register_id]
        self.hub.subscribe(self, actor.topic)
        actor.screen_attached()

    def _end_staff_session(self, register_id: str) -> None:
        self.hub.registers[register_id].live_session()  # idle too long: the register drops it and publishes
