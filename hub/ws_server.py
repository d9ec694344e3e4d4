"""The live-protocol server (trio-websocket).

Each connection is isolated: its handler catches everything, so a failing connection closes itself and
never the server. Each connection has its own bounded outbox task, so one slow browser never blocks the
register actors or other browsers; snapshots are coalesced (only the newest per topic is sent). Heartbeat
pings detect dead peers; the Origin header is checked against an allow-list.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from hub import auth
from hub.commands import HANDLERS, Request, StoredReply, check_access, reply_key, stored_reply
from hub.errors import HubError, NotAuthenticated
from hub.logs import bind
from hub.protocol import (
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
    encode_bytes,
)
from hub.store.env import put

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("hub.ws")
OUTBOX_SIZE = 256
SNAPSHOT_INTERVAL = 0.04  # at most 25 snapshots a second per topic and connection
IN_FLIGHT_PER_CONNECTION = 16


class SlowConsumer(Exception):
    pass


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
    # default: the browser page must come from this hub's own HTTP listener (same host, its HTTP port)
    o = urlsplit(origin)
    host = urlsplit("//" + h.get("host", "")).hostname
    return o.hostname is not None and o.hostname == host and o.port == hub.http_port


async def serve_ws(hub: Hub, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    s = hub.config.server
    async with trio.open_nursery() as handlers:

        async def handler(request: WebSocketRequest) -> None:
            await handle_request(hub, request)

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


async def handle_request(hub: Hub, request: WebSocketRequest) -> None:
    try:
        # wsproto keeps the Host header apart from the others
        host_header = str(getattr(getattr(request, "_event", None), "host", "") or "")
        if not origin_allowed(hub, request.headers, host_header):
            hub.metrics.ws_rejected.labels("origin").inc()
            await request.reject(403, body=b"origin not allowed")
            return
        ws = await request.accept()
    except Exception:  # a broken handshake is that client's problem only
        log.debug("handshake failed", exc_info=True)
        return
    conn = Connection(hub, ws)
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


class Connection:
    def __init__(self, hub: Hub, ws: WebSocketConnection) -> None:
        self.hub = hub
        self.ws = ws
        self.register_id: str | None = None
        self.device_name = ""
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
                while True:
                    try:
                        message = await self.ws.get_message()
                    except ConnectionClosed:
                        break
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
                msg = decode_command(message)
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
            check_access(spec, actor.live_session(), type(msg).__name__)
        if spec.scope == "connection":  # beside the actor, not queued behind it (cancel_payment)
            req = Request(
                hub=hub, msg=msg, register_id=self.register_id, session=actor.live_session(), connection=self
            )
            self.send_frame(Ok(id=msg.id, result=await spec.fn(req, msg)))
            return
        if spec.idempotent:
            frame = await self._deduplicated(msg.id)
            if frame is not None:
                self.send_frame(frame)
                return
        key = (self.register_id, msg.id)
        done = hub.in_flight[key] = trio.Event()
        try:
            req = Request(hub=hub, msg=msg, register_id=self.register_id, session=None, connection=self)
            result = await actor.mailbox.call(req, timeout=spec.timeout_s)
            self.send_frame(
                req.committed_frame if req.committed_frame is not None else Ok(id=msg.id, result=result)
            )
        finally:
            done.set()
            hub.in_flight.pop(key, None)

    async def _deduplicated(self, msg_id: str) -> bytes | None:
        pending = self.hub.in_flight.get((self.register_id, msg_id))
        if pending is not None:  # the same id is still being applied: wait for it, then answer from store
            await pending.wait()
        assert self.register_id is not None
        return stored_reply(self.hub, self.register_id, msg_id)

    async def _pair(self, msg: Pair) -> None:
        hub = self.hub
        # a browser that lost the answer re-sends the same id: answer it from the stored reply
        scope = f"pair:{msg.code}"
        frame = stored_reply(hub, scope, msg.id)
        if frame is not None:
            reply = msgspec.json.decode(frame)
            self._attach(reply["result"]["register_id"], msg.device_name or "browser")
            self.send_frame(frame)
            return
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)

        def fn(txn: Any) -> Any:
            dev = auth.enroll(txn, hub.store, msg.code, msg.device_name or "browser", now=now, token=token)
            ok = Ok(id=msg.id, result={"device_token": token, "register_id": dev.register_id})
            put(
                txn,
                hub.store,
                "replies",
                reply_key(scope, msg.id),
                StoredReply(at=now, frame=encode_bytes(ok)),
            )
            return dev

        dev = await hub.writer.write(fn, label="pair")
        self._attach(dev.register_id, dev.name)
        self.send_frame(Ok(id=msg.id, result={"device_token": token, "register_id": dev.register_id}))

    def _hello(self, msg: Hello) -> None:
        dev = self.hub.store.get("devices", auth.token_hash(msg.device_token), auth.EnrolledDevice)
        if dev is None or dev.revoked or dev.register_id not in self.hub.registers:
            raise NotAuthenticated(
                "This register's enrolment is not known here; pair it again.", code="not_paired"
            )
        self._attach(dev.register_id, dev.name)
        actor = self.hub.registers[dev.register_id]
        resumed = False
        if msg.session_token:
            s = self.hub.sessions.get(auth.token_hash(msg.session_token))
            live = actor.live_session()
            if s is not None and live is s:
                resumed = True
        if not resumed and actor.session is not None:
            # a browser that cannot prove the staff session must not inherit it: the staff logs in again
            self.hub.sessions.pop(actor.session.token_hash, None)
            actor.session = None
            actor.publish()
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
