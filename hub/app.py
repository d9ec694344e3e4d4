"""The hub process: opens the store, starts the writer, the actors and the two servers under supervision."""

from __future__ import annotations

import functools
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from actors.register import RegisterActor, RegisterParts
from hub import audit
from hub.actor import QuarantinedMessage, redact_legacy
from hub.auth import StaffSession
from hub.config import StoreConfig
from hub.http_server import serve_http
from hub.live.replies import Replies, expired_before
from hub.live.server import serve_ws
from hub.live.topics import Subscriber, Topic
from hub.metrics import Metrics
from hub.services import Services
from hub.signals import Signals, verify_audit
from hub.store.env import Store, decode, encode, next_seq, put
from hub.store.keys import u64
from hub.store.migrations import open_store
from hub.store.writer import StoreWriter
from hub.supervisor import ChildSpec, Supervisor

log = logging.getLogger("hub")
# a browser retries a message within seconds or minutes of losing its answer; a day is plenty
REPLY_RETENTION = timedelta(hours=24)
STORAGE_PROBE_SECONDS = 1.0  # how soon selling resumes once a full disk has space again


def redact_stored_quarantine(txn: Any, store: Store) -> int:
    """Records quarantined before redaction existed kept the whole message (a PIN, a licence scan): keep
    only their types (issue 11). The audit entries that point at them are hash-chained and stay as they are."""
    db = store.db("quarantine")
    changed: list[tuple[bytes, bytes]] = []
    with txn.cursor(db=db) as cur:
        for k, v in cur:
            q = decode(v, QuarantinedMessage)
            if not q.redacted:
                changed.append((bytes(k), encode(redact_legacy(q))))
    for k, v in changed:
        txn.put(k, v, db=db)
    return len(changed)


class StoreNotOpen(RuntimeError):
    """The store was used before ``Hub.run`` opened it (a bug: features use it from their setup step on)."""


class Hub:
    """The running hub: its store, writer, registers and servers. What features it runs is in ``services``,
    built by hub/wiring.py (a bare ``Hub(config)`` runs only the foundation: login, pairing, incidents)."""

    def __init__(self, config: StoreConfig, services: Services | None = None) -> None:
        self.config = config
        self.services = services if services is not None else Services()
        self.metrics = Metrics()
        self.metrics.configure(config)
        self.signals = Signals()
        # opened by ``run`` before any setup step, closed when it ends: ``store`` and ``writer`` check
        self._store: Store | None = None
        self._writer: StoreWriter | None = None
        self.registers: dict[str, RegisterActor] = {}
        self.sessions: dict[bytes, StaffSession] = {}
        # stored, pending and in-flight replies: a retried message id is answered, never applied twice
        self.replies = Replies()
        self.topics: dict[str, Topic] = {}
        self.quarantine: list[QuarantinedMessage] = []
        self.supervisor: Supervisor | None = None
        self.ready = False
        self.http_port = 0
        self.ws_port = 0
        self.started_at = datetime.now(UTC)
        self.boot_id = secrets.token_hex(6)
        self._shutdown = trio.Event()

    @property
    def store(self) -> Store:
        """The store; open from the start of ``run`` (before the features' setup steps) until it returns."""
        if self._store is None:
            raise StoreNotOpen("The hub's store is not open yet (Hub.run opens it).")
        return self._store

    @property
    def writer(self) -> StoreWriter:
        """The store's single writer, running from the start of ``run`` (after the store opened)."""
        if self._writer is None:
            raise StoreNotOpen("The hub's store writer is not running yet (Hub.run starts it).")
        return self._writer

    @property
    def is_open(self) -> bool:
        """Whether ``store`` and ``writer`` may be used (HTTP answers before they are)."""
        return self._writer is not None

    # ---- lifecycle ----
    async def run(self, *, task_status: trio.TaskStatus[Hub] = trio.TASK_STATUS_IGNORED) -> None:

        cfg = self.config
        async with trio.open_nursery() as nursery:
            # HTTP first, so /healthz answers 503 while the rest starts
            self.http_port = await nursery.start(serve_http, self)
            store = self._store = await trio.to_thread.run_sync(
                lambda: open_store(
                    cfg.data_dir, map_size=cfg.storage.map_size_mb << 20, durable=cfg.storage.durable
                )
            )
            try:
                writer = self._writer = StoreWriter(
                    store, max_batch=cfg.storage.max_batch, metrics=self.metrics
                )
                self.supervisor = sup = Supervisor(nursery, metrics=self.metrics)
                await sup.start(ChildSpec(name="store-writer", run=writer.run, max_restarts=3, critical=True))
                await writer.write(
                    functools.partial(redact_stored_quarantine, store=store), label="quarantine"
                )
                for setup in self.services.setup:
                    await setup(self)
                parts = self.register_parts()
                for reg in cfg.registers:
                    actor = self.services.actor_kinds.get(reg.kind, RegisterActor)(parts, reg)
                    self.registers[reg.id] = actor
                    await sup.start(ChildSpec(name=f"register:{reg.id}", run=actor.run))
                for start in self.services.start:
                    await start(self, sup)
                self.signals.start(store)  # audit events count from here, before any client is served
                self.ws_port = await nursery.start(serve_ws, self)
                nursery.start_soon(self._housekeeping)
                nursery.start_soon(self._watch_storage)
                self.ready = True
                log.info(
                    "hub ready: http %d, ws %d, %d registers",
                    self.http_port,
                    self.ws_port,
                    len(self.registers),
                )
                task_status.started(self)
                await self._shutdown.wait()
                # clean stop: what was acknowledged behind the disk (cart edits) is committed first
                if not await writer.flush():
                    log.warning("store writer did not drain in time; queued cart edits may be lost")
                nursery.cancel_scope.cancel()
            finally:
                self.ready = False
        # every task is gone: the writer finished its last batch (commits are never abandoned)
        store.close()

    def register_parts(self) -> RegisterParts:
        """What the registers read of this hub (not the hub): the open store and its writer, so only once
        ``run`` opened them (``StoreNotOpen`` before)."""
        return RegisterParts(
            store=self.store,
            writer=self.writer,
            config=self.config,
            services=self.services,
            metrics=self.metrics,
            registers=self.registers,
            sessions=self.sessions,
            replies=self.replies,
            publish=self.publish,
            record_quarantine=self.record_quarantine,
        )

    def stop(self) -> None:
        self._shutdown.set()

    async def _housekeeping(self) -> None:
        interval = min(self.config.storage.reader_check_seconds, self.config.storage.audit_verify_seconds)
        last_prune = 0.0
        last_verify = -float("inf")
        while True:
            if trio.current_time() - last_verify >= self.config.storage.audit_verify_seconds:
                last_verify = trio.current_time()
                try:
                    await trio.to_thread.run_sync(verify_audit, self)
                except Exception:
                    log.exception("could not verify the audit chain")
            cleared = self.store.env.reader_check()
            if cleared:
                self.metrics.store_stale_readers.inc(cleared)
                log.warning("cleared %d stale LMDB readers", cleared)
            if trio.current_time() - last_prune > 3600:
                last_prune = trio.current_time()
                cutoff = datetime.now(UTC) - REPLY_RETENTION
                # in small steps, each its own commit: selling goes on while a day's replies go
                pruned = await self.writer.sweep("replies", expired_before(cutoff), label="prune")
                if pruned:
                    log.info("pruned %d stored replies older than %s", pruned, REPLY_RETENTION)
            await trio.sleep(interval)

    async def _watch_storage(self) -> None:
        """After a failed commit (a full disk), try a small one now and then: once it lands, /healthz is
        green again and the registers sell, with nobody restarting anything."""
        while True:
            await trio.sleep(STORAGE_PROBE_SECONDS)
            if self.writer.storage_problem is not None:
                await self.writer.probe()

    def refresh_gauges(self) -> None:
        m = self.metrics
        self.signals.refresh(self)
        if self.ready:  # ready: the store is open and its writer runs
            m.mailbox_depth.labels("store-writer").set(self.writer.depth())
            for r in self.registers.values():
                m.mailbox_depth.labels(r.mailbox.name).set(r.mailbox.depth())

    # ---- snapshots ----
    def publish(self, topic: str, state: Any) -> None:
        """Push a topic's new state: a value, or a callable that builds it when it is sent."""
        t = self._topic(topic)
        t.version += 1
        if callable(state):
            t.compute = state
        else:
            t.compute, t.state = None, state
        for conn in list(t.subscribers):
            conn.push_snapshot(topic)

    def _topic(self, name: str) -> Topic:
        t = self.topics.get(name)
        if t is None:
            t = self.topics[name] = Topic(name=name)
        return t

    def subscribe(self, conn: Subscriber, topic: str) -> None:
        self._topic(topic).subscribers.add(conn)
        conn.push_snapshot(topic)

    def state_of(self, topic: str) -> Any:
        t = self.topics.get(topic)
        return None if t is None else t.current()

    def unsubscribe(self, conn: Subscriber) -> None:
        for t in self.topics.values():
            t.subscribers.discard(conn)

    # ---- quarantine ----
    def record_quarantine(self, q: QuarantinedMessage) -> None:
        self.quarantine.append(q)

        def fn(txn: Any) -> None:
            seq = next_seq(txn, self.store, "quarantine")
            put(txn, self.store, "quarantine", u64(seq), q)
            audit.append(txn, self.store, "message_quarantined", detail={"actor": q.actor, "error": q.error})

        async def persist() -> None:
            try:
                await self.writer.write(fn, label="quarantine")
            except Exception:
                log.exception("could not persist a quarantined message")

        if self.supervisor is not None:
            self.supervisor.start_soon(persist)
