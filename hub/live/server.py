"""The live-protocol server: trio-websocket transport around the sans-I/O session (hub/live/session.py).

It accepts (Origin allow-list, connection limit), reads frames, feeds them to the connection's
:class:`~hub.live.session.Session` and executes the effects it answers with (send, persist a pairing, audit,
dispatch to the register actor, wait for an id in flight, close); ``ConnectionClosed`` is handled here and
nowhere else. Each connection is isolated: its handler catches everything, so a failing connection closes
itself and never the server. Each connection has its own bounded outbox task, so one slow browser never
blocks the register actors or other browsers; snapshots are coalesced (only the newest per topic is sent).
Heartbeat pings detect dead peers. Resources are bounded at the edge: a connection limit, an idle timeout
for connections that never pair, a frame size limit (1009), a JSON nesting limit checked before decoding.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

from hub import auth
from hub.access import HandlerSpec
from hub.commands import Request
from hub.errors import HubError, NotAuthenticated
from hub.live.edge import Gate, origin_allowed, ssl_context
from hub.live.frames import Command, Error, ProtocolError, encode
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
from hub.logs import bind

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("hub.ws")
OUTBOX_SIZE = 256
SNAPSHOT_INTERVAL = 0.04  # at most 25 snapshots a second per topic and connection
IN_FLIGHT_PER_CONNECTION = 16
# how long a due snapshot may wait for this connection's commands in flight (their changes coalesce into
# it): at 50 busy registers fewer snapshots are built and sent (hub CPU per request measured lower)
SNAPSHOT_HOLD = SNAPSHOT_INTERVAL


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
    async with trio.open_nursery() as handlers:
        handlers.start_soon(gate.return_memory_after_storms)

        async def handler(request: WebSocketRequest) -> None:
            await handle_request(hub, request, gate)

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


async def handle_request(hub: Hub, request: WebSocketRequest, gate: Gate) -> None:
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
    conn = Connection(hub, ws, gate)
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
    """One WebSocket: its session, its outbox and snapshot tasks, and the effects it executes."""

    def __init__(self, hub: Hub, ws: WebSocketConnection, gate: Gate | None = None) -> None:
        self.hub = hub
        self.ws = ws
        self.gate = gate or Gate(hub)
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
        self._snap_pending: list[str] = []
        self._snap_wakeup = trio.Event()
        self._limiter = trio.Semaphore(IN_FLIGHT_PER_CONNECTION)
        self._nursery: trio.Nursery | None = None

    @property
    def register_id(self) -> str | None:
        return self.session.register_id

    # ---- outbound ----
    def push_snapshot(self, topic: str) -> None:
        if topic not in self._snap_pending:  # coalesce: the newest state is taken when it is sent
            self._snap_pending.append(topic)
        self._snap_wakeup.set()

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
        """Replies, errors and the welcome, in order, as soon as they are ready."""
        async for item in self._out_recv:
            await self.ws.send_message(_frame_text(item))

    async def _snapshot_sender(self) -> None:
        """Snapshots on their own task: a reply never waits behind one. Each is built when sent (so a burst
        of changes costs one build) and a topic is sent at most every SNAPSHOT_INTERVAL: a screen needs
        no more, and a busy hub spends its time on the next scan instead. While this connection's own
        commands are still in flight the snapshot waits for them (their changes coalesce into it), for at
        most SNAPSHOT_HOLD: once they are answered it goes out (within a quarter of the hold), so a screen
        shows the final state soon after the reply of its last change, and never later than the hold."""

        def commands_in_flight() -> bool:  # being handled, or the reply not out yet
            return (
                self._limiter.value < IN_FLIGHT_PER_CONNECTION
                or self._out_recv.statistics().current_buffer_used > 0
            )

        while True:
            await self._snap_wakeup.wait()
            self._snap_wakeup = trio.Event()
            held_until = trio.current_time() + SNAPSHOT_HOLD
            while commands_in_flight() and trio.current_time() < held_until:
                await trio.sleep(SNAPSHOT_HOLD / 4)
            # the reply of the change that published this is one scheduling round behind: let it go first
            await trio.lowlevel.checkpoint()
            while self._snap_pending:
                topic = self._snap_pending.pop(0)
                t = self.hub.topics.get(topic)
                if t is not None:
                    await self.ws.send_message(t.encoded())
            await trio.sleep(SNAPSHOT_INTERVAL)

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
                nursery.start_soon(self._snapshot_sender)
                nursery.start_soon(self._heartbeat)
                nursery.start_soon(self._unpaired_watch)
                while True:
                    try:
                        message = await self.ws.get_message()
                    except ConnectionClosed:
                        break
                    self.session.heard(trio.current_time())
                    await self._limiter.acquire()
                    nursery.start_soon(self._handle_one, message)
                nursery.cancel_scope.cancel()
        except* ConnectionClosed:
            pass

    def detach(self) -> None:
        self.hub.unsubscribe(self)
        if self.register_id and self.register_id in self.hub.registers:
            actor = self.hub.registers[self.register_id]
            actor.screen_detached()
        self._out_send.close()

    async def _handle_one(self, message: str | bytes) -> None:
        t0 = time.perf_counter()
        kind = "invalid"
        try:
            try:
                msg = self.session.decode(message, trio.current_time())
            except ProtocolError as exc:
                self.send_frame(exc.frame())
                return
            kind = str(type(msg).__struct_config__.tag)
            bind(register=self.register_id or "", request_id=msg.id, message=kind)
            try:
                await self._execute(
                    self.session.handle(msg, now=datetime.now(UTC), clock=trio.current_time())
                )
            except HubError as exc:  # a write the session asked for was refused (a full disk)
                await self._execute(self.session.failed(msg.id, exc))
            except trio.TooSlowError:
                await self._execute(self.session.timed_out(msg.id))
        finally:
            self._limiter.release()
            self.gate.message_timer(kind).observe(time.perf_counter() - t0)

    # ---- effects ----
    async def _execute(self, effects: list[Effect]) -> None:
        for effect in effects:
            await self._apply(effect)

    async def _apply(self, effect: Effect) -> None:
        hub = self.hub
        match effect:
            case Send(frame=frame):
                self.send_frame(frame)
            case Close(code=code, reason=reason):
                await self.ws.aclose(code, reason)
            case Attach(register_id=register_id):
                self._attach(register_id)
            case Rejected(reason=reason):
                hub.metrics.ws_rejected.labels(reason).inc()
            case AuditPairingFailure():
                await hub.writer.write(
                    lambda txn: auth.record_pairing_failure(
                        txn, hub.store, reason=effect.reason, peer=effect.peer, device_name=effect.device_name
                    ),
                    label="pairing_failed",
                )
            case PersistPairing():
                await self._persist_pairing(effect)
            case EndStaffSession(register_id=register_id):
                self._end_staff_session(register_id)
            case RunBeside() | Dispatch():
                await self._run_command(effect)
            case WaitInFlight():
                pending = hub.replies.in_flight.get((effect.register_id, effect.msg.id))
                if pending is not None:
                    await pending.wait()
                await self._execute(self.session.in_flight_done(effect))

    async def _persist_pairing(self, effect: PersistPairing) -> None:
        hub = self.hub
        try:
            dev = await hub.writer.write(
                lambda txn: auth.enroll(
                    txn, hub.store, effect.code, effect.device_name, now=effect.at, token=effect.token
                ),
                label="pair",
            )
        except NotAuthenticated as exc:  # used by a concurrent pairing in the meantime
            await self._execute(self.session.pairing_refused(effect.msg_id, effect.device_name, exc.message))
            return
        await self._execute(self.session.paired(effect, dev.register_id, dev.name))

    async def _run_command(self, effect: RunBeside | Dispatch) -> None:
        """Run a command's handler: beside the actor, or through its mailbox with the id marked in flight."""
        hub, msg = self.hub, effect.msg
        req = Request.for_hub(
            hub,
            msg,
            effect.register_id,
            effect.staff,  # the gate's decision, made once by the session
            fingerprint=effect.fingerprint if isinstance(effect, Dispatch) else b"",
        )
        try:
            if isinstance(effect, RunBeside):
                result = await effect.spec.fn(req, msg)
            else:
                result = await hub.registers[effect.register_id].mailbox.call(
                    req, timeout=effect.spec.timeout_s, on_done=self._in_flight(effect.register_id, msg.id)
                )
            effects = self.session.answered(msg, result, req.committed_frame)
        except HubError as exc:
            effects = self.session.failed(msg.id, exc)
        except trio.TooSlowError:
            effects = self.session.timed_out(msg.id)
        await self._execute(effects)

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
