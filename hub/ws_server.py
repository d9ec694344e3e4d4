"""The live-protocol server (trio-websocket).

Each connection is isolated: its handler catches everything, so a failing connection closes itself and
never the server. Each connection has its own bounded outbox task, so one slow browser never blocks the
register actors or other browsers; snapshots are coalesced (only the newest per topic is sent). Heartbeat
pings detect dead peers; the Origin header is checked against an allow-list.

Resources are bounded at the edge: a connection limit, an idle timeout for connections that never pair, a
JSON nesting limit checked before decoding, pairing attempts throttled per connection and per address.
A connection is logged in only by a PIN typed on it (or a resumed session token it proves): several screens
of one register share the staff session only after a PIN on each.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import ipaddress
import logging
import secrets
import ssl
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

from hub import auth
from hub.commands import HANDLERS, Request, check_access, fingerprint, stored_reply
from hub.errors import HubError, NotAuthenticated
from hub.live.frames import (
    PRE_LOGIN,
    Error,
    Hello,
    Ok,
    Pair,
    Ping,
    ProtocolError,
    Welcome,
    decode_command,
    encode,
)
from hub.logs import bind

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("hub.ws")
OUTBOX_SIZE = 256
SNAPSHOT_INTERVAL = 0.04  # at most 25 snapshots a second per topic and connection
IN_FLIGHT_PER_CONNECTION = 16


class SlowConsumer(Exception):
    pass


_library_close_event = WebSocketConnection._handle_close_connection_event


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


WebSocketConnection._handle_close_connection_event = _close_event_tells_the_peer  # type: ignore[method-assign]


def _frame_text(item: Any) -> str:
    if isinstance(item, bytes):
        return item.decode()
    if isinstance(item, str):
        return item
    return encode(item)


def ssl_context(hub: Hub) -> ssl.SSLContext | None:
    s = hub.config.server
    if not s.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(s.tls_cert, s.tls_key)
    return ctx


def origin_allowed(hub: Hub, headers: list[tuple[bytes, bytes]], host_header: str = "") -> bool:
    h = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
    h.setdefault("host", host_header)
    origin = h.get("origin")
    if origin is None:
        return True  # not a browser: hub.client, bench, integrators (they still need a device token)
    allowed = hub.config.server.allowed_origins
    if allowed:
        return origin in allowed
    # default: the browser page must come from this hub's own HTTP listener: the configured host (or, on a
    # loopback or wildcard listener, a loopback or literal address) and the HTTP port. A DNS-rebinding page
    # (attacker.example resolving to the hub) names itself in Origin and Host, and is refused though they agree
    try:
        o = urlsplit(origin)
        o_port = o.port or (443 if o.scheme == "https" else 80)
        target = urlsplit("//" + h.get("host", "")).hostname
    except ValueError:
        return False
    if o.hostname is None or target is None or o.hostname != target or o_port != hub.http_port:
        return False
    return _is_own_host(hub, o.hostname)


def _is_own_host(hub: Hub, name: str) -> bool:
    """The configured host, or a loopback name when the hub listens on loopback or everywhere."""
    configured = hub.config.server.host
    loopback = {"127.0.0.1", "localhost", "::1", "[::1]"}
    if name == configured or name.strip("[]") == configured:
        return True
    if configured in ("0.0.0.0", "::", ""):
        # listening on every address: any literal IP of this machine is its own; names must be configured
        return _is_ip_literal(name) or name in loopback
    return configured in loopback and name in loopback


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class PairingThrottle:
    """Sliding one-minute windows of pairing attempts, per connection and per source address (an 8-digit
    code must not be guessable at thousands of tries a second). Clock injected for tests."""

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


_LIBC = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_LIBC) if _LIBC else None  # glibc's malloc_trim; absent elsewhere (then nothing to do)


def return_memory() -> None:
    """After a connection storm, hand freed heap back to the OS (glibc keeps it otherwise). Runs off the trio
    thread; the collection first, on the trio thread, frees the closed connections' reference cycles."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


class Gate:
    """Per-server limits of the live protocol: open connections, pairing throttle, memory after storms."""

    def __init__(self, hub: Hub) -> None:
        s, sec = hub.config.server, hub.config.security
        self.open = 0
        self.peak = 0
        self.max_connections = s.max_connections
        self.pairing = PairingThrottle(sec.pairing_attempts_per_connection, sec.pairing_attempts_per_address)

    def closed(self) -> None:
        self.open -= 1

    async def return_memory_after_storms(self, every: float = 2.0) -> None:
        """Once many connections have closed since the last look (a storm passed), give the memory back.
        Freed heap goes back to the OS fully when the hub runs with PYTHONMALLOC=malloc (ops/storehub.service;
        bench/connection_storm.py measures both)."""
        # looks left after a storm: a look that lands mid-storm must not be the last (under load the hub
        # takes seconds to notice every close), and a closed connection's memory is freed a little after
        # it counts as closed (trio-websocket's own closing ends after the handler): trim again on the next
        # few looks, and as long as connections keep closing
        after_storm = 0
        while True:
            await trio.sleep(every)
            closed = self.peak - self.open
            if closed >= 128 or (after_storm and closed > 0):
                after_storm = 3
            elif after_storm:
                after_storm -= 1
            else:
                continue
            self.peak = self.open
            gc.collect()  # closed connections sit in reference cycles (nurseries, tasks) until collected
            await trio.to_thread.run_sync(return_memory)


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


class Connection:
    def __init__(self, hub: Hub, ws: WebSocketConnection, gate: Gate | None = None) -> None:
        self.hub = hub
        self.ws = ws
        self.gate = gate or Gate(hub)
        self.register_id: str | None = None
        self.device_name = ""
        # the staff session this screen proved (a PIN typed here, or its own resumed token): never inherited
        self.session_hash: bytes | None = None
        self._pair_attempts: deque[float] = deque()
        self._throttle_audited = False
        self._last_heard = trio.current_time()
        remote = getattr(ws, "remote", None)
        self.peer = str(getattr(remote, "address", remote) or "")
        self._out_send, self._out_recv = trio.open_memory_channel[Any](OUTBOX_SIZE)
        self._snap_pending: list[str] = []
        self._snap_wakeup = trio.Event()
        self._limiter = trio.Semaphore(IN_FLIGHT_PER_CONNECTION)
        self._nursery: trio.Nursery | None = None

    # ---- outbound ----
    def push_snapshot(self, topic: str) -> None:
        if topic not in self._snap_pending:  # coalesce: the newest state is taken when it is sent
            self._snap_pending.append(topic)
        self._snap_wakeup.set()

    def send_frame(self, frame: Any) -> None:
        self._enqueue(frame)

    def _enqueue(self, item: Any) -> None:
        try:
            self._out_send.send_nowait(item)
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
        no more, and a busy hub spends its time on the next scan instead."""
        while True:
            await self._snap_wakeup.wait()
            self._snap_wakeup = trio.Event()
            # the reply of the change that published this is one scheduling round behind: let it go first
            await trio.lowlevel.checkpoint()
            while self._snap_pending:
                topic = self._snap_pending.pop(0)
                t = self.hub.topics.get(topic)
                if t is not None:
                    await self.ws.send_message(t.encoded())
            await trio.sleep(SNAPSHOT_INTERVAL)

    def staff_session(self) -> auth.StaffSession | None:
        """The register's live session if this connection proved it, else None."""
        if self.register_id is None or self.session_hash is None:
            return None
        live = self.hub.registers[self.register_id].live_session()
        if live is None or self.hub.sessions.get(self.session_hash) is not live:
            return None
        return live

    async def _unpaired_watch(self) -> None:
        """A connection that neither pairs nor says hello is closed after a quiet while (sockets that only
        hold memory are how a storm of idle connections fills the hub)."""
        idle = self.hub.config.server.unpaired_idle_seconds
        while self.register_id is None:
            left = self._last_heard + idle - trio.current_time()
            if left <= 0:
                log.info("unpaired connection from %s idle for %ss; closing", self.peer, idle)
                await self.ws.aclose(1008, "pair or say hello first")
                return
            await trio.sleep(min(left, 1.0))

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
        cfg = self.hub.config
        self.send_frame(
            Welcome(
                protocol=1,
                store=cfg.store.name,
                server_time=datetime.now(UTC).isoformat(),
                demo=cfg.server.demo,
                boot=self.hub.boot_id,
            )
        )
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
                    self._last_heard = trio.current_time()
                    await self._limiter.acquire()
                    nursery.start_soon(self._handle_one, message)
                nursery.cancel_scope.cancel()
        except* ConnectionClosed:
            pass

    def detach(self) -> None:
        self.hub.unsubscribe(self)
        if self.register_id and self.register_id in self.hub.registers:
            actor = self.hub.registers[self.register_id]
            actor.connected = max(0, actor.connected - 1)
            actor.publish()
        self._out_send.close()

    async def _handle_one(self, message: str | bytes) -> None:
        t0 = time.perf_counter()
        kind = "invalid"
        try:
            try:
                msg = decode_command(message, max_depth=self.hub.config.server.max_json_depth)
            except ProtocolError as exc:
                self.hub.metrics.message_errors.labels(exc.code).inc()
                self.send_frame(exc.frame())
                return
            kind = type(msg).__struct_config__.tag  # type: ignore[assignment]
            bind(register=self.register_id or "", request_id=msg.id, message=kind)
            try:
                await self._dispatch(msg)
            except HubError as exc:
                self.hub.metrics.message_errors.labels(exc.code).inc()
                self.send_frame(Error(id=msg.id, code=exc.code, message=exc.message, field=exc.field))
            except trio.TooSlowError:
                self.hub.metrics.message_errors.labels("timeout").inc()
                self.send_frame(Error(id=msg.id, code="timeout", message="The hub took too long; try again."))
        finally:
            self._limiter.release()
            self.hub.metrics.message_seconds.labels(str(kind)).observe(time.perf_counter() - t0)

    async def _dispatch(self, msg: Any) -> None:
        hub = self.hub
        if isinstance(msg, Ping):
            self.send_frame(Ok(id=msg.id, result={"server_time": datetime.now(UTC).isoformat()}))
            return
        if isinstance(msg, Pair):
            await self._pair(msg)
            return
        if isinstance(msg, Hello):
            self._hello(msg)
            return
        if self.register_id is None:
            raise NotAuthenticated(
                "This browser is not enrolled as a register yet: pair it with a code first.",
                code="not_paired",
            )
        spec = HANDLERS.get(type(msg))
        if spec is None:
            raise HubError(f"{type(msg).__name__} is not handled by this hub.", code="unsupported")
        actor = hub.registers[self.register_id]
        if not isinstance(msg, PRE_LOGIN):
            check_access(spec, self.staff_session(), type(msg).__name__)
        if spec.scope == "connection":  # beside the actor, not queued behind it (cancel_payment)
            req = Request(
                hub=hub, msg=msg, register_id=self.register_id, session=self.staff_session(), connection=self
            )
            self.send_frame(Ok(id=msg.id, result=await spec.fn(req, msg)))
            return
        fp = fingerprint(msg)
        if spec.idempotent:
            frame = await self._deduplicated(msg.id, fp)
            if frame is not None:
                self.send_frame(frame)
                return
        key = (self.register_id, msg.id)
        done = hub.in_flight[key] = trio.Event()
        try:
            req = Request(
                hub=hub,
                msg=msg,
                register_id=self.register_id,
                session=self.staff_session(),
                connection=self,
                fingerprint=fp,
            )
            result = await actor.mailbox.call(req, timeout=spec.timeout_s)
            self.send_frame(
                req.committed_frame if req.committed_frame is not None else Ok(id=msg.id, result=result)
            )
        finally:
            done.set()
            hub.in_flight.pop(key, None)

    async def _deduplicated(self, msg_id: str, fp: bytes) -> bytes | None:
        pending = self.hub.in_flight.get((self.register_id, msg_id))
        if pending is not None:  # the same id is still being applied: wait for it, then answer from store
            await pending.wait()
        assert self.register_id is not None
        return stored_reply(self.hub, self.register_id, msg_id, fp)

    async def _pair(self, msg: Pair) -> None:
        """Enrol with a one-time code. The code is checked before anything else: a used code never
        answers again, whatever the id (no stored reply holds a device token). Attempts are throttled per
        connection and per address; every refusal is audited in a transaction of its own."""
        hub = self.hub
        now = datetime.now(UTC)
        name = msg.device_name or "browser"
        if not self.gate.pairing.allow(self._pair_attempts, self.peer, trio.current_time()):
            hub.metrics.ws_rejected.labels("pairing_rate").inc()
            if not self._throttle_audited:  # once per connection: a flood must not become a flood of writes
                self._throttle_audited = True
                await self._pairing_failed("too many attempts", name)
            raise HubError(
                "Too many pairing attempts: wait a minute, then type the code again.", code="rate_limited"
            )
        if not auth.pairing_code_valid(hub.store, msg.code, now):
            await self._pairing_failed("unknown, used or expired code", name)
            raise NotAuthenticated(
                "That pairing code is not valid or has expired. Ask a manager for a new one.",
                code="bad_pairing_code",
            )
        token = secrets.token_urlsafe(32)
        try:
            dev = await hub.writer.write(
                lambda txn: auth.enroll(txn, hub.store, msg.code, name, now=now, token=token), label="pair"
            )
        except NotAuthenticated:  # used by a concurrent pairing in the meantime
            await self._pairing_failed("unknown, used or expired code", name)
            raise
        self._attach(dev.register_id, dev.name)
        self.session_hash = None  # a new screen starts logged out
        self.send_frame(Ok(id=msg.id, result={"device_token": token, "register_id": dev.register_id}))

    async def _pairing_failed(self, reason: str, name: str) -> None:
        hub = self.hub
        await hub.writer.write(
            lambda txn: auth.record_pairing_failure(
                txn, hub.store, reason=reason, peer=self.peer, device_name=name
            ),
            label="pairing_failed",
        )

    def _hello(self, msg: Hello) -> None:
        dev = self.hub.store.get("devices", auth.token_hash(msg.device_token), auth.EnrolledDevice)
        if dev is None or dev.revoked or dev.register_id not in self.hub.registers:
            raise NotAuthenticated(
                "This register's enrolment is not known here; pair it again.", code="not_paired"
            )
        self._attach(dev.register_id, dev.name)
        actor = self.hub.registers[dev.register_id]
        resumed = False
        self.session_hash = None
        if msg.session_token:
            h = auth.token_hash(msg.session_token)
            s = self.hub.sessions.get(h)
            live = actor.live_session()
            if s is not None and live is s:
                resumed = True
                self.session_hash = h
        # a screen that cannot prove the staff session starts logged out; other screens keep theirs
        staff = actor.session
        self.send_frame(
            Ok(
                id=msg.id,
                result={
                    "register_id": dev.register_id,
                    "resumed": resumed,
                    "staff": None
                    if not resumed or staff is None
                    else {"id": staff.staff_id, "name": staff.name, "role": staff.role},
                },
            )
        )

    def _attach(self, register_id: str, name: str) -> None:
        if self.register_id == register_id:
            return
        self.hub.unsubscribe(self)
        self.register_id = register_id
        self.device_name = name
        actor = self.hub.registers[register_id]
        actor.connected += 1
        self.hub.subscribe(self, actor.topic)
        actor.publish()
