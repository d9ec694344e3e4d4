"""``storehub hq``: headquarters of a chain, one asyncio process (nats-py and psycopg's async API are asyncio).

At start: apply the SQL migrations, make sure the chain's stream and catalogue bucket exist, publish the
current catalogue version, then run three things side by side: the ingest (one durable pull consumer for
the chain; each fetched batch applied in one PostgreSQL transaction, acknowledged after the commit), the
web server (pages, REST, /metrics, /healthz), and nothing else: a crash anywhere restarts the process
(systemd), and the durable consumer and the (store, sequence) keys make that safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hub.chain import names
from hub.hq import catalogue
from hub.hq.auth import Sessions
from hub.hq.config import HqConfig
from hub.hq.ingest import Incoming, apply_batch
from hub.hq.migrate import migrate
from hub.hq.web import HqApp

log = logging.getLogger("hub.hq")


class HqMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "storehub_hq_"
        self.ingested = Counter(
            p + "events_ingested", "Store events applied to PostgreSQL", ["store"], registry=r
        )
        self.duplicates = Counter(
            p + "duplicates", "Events received again and ignored (already applied)", registry=r
        )
        self.rejects = Counter(
            p + "rejects", "Messages HQ could not read (kept in ingest_rejects)", registry=r
        )
        self.lag = Gauge(
            p + "lag_seconds", "Commit at the store to commit at HQ, newest event of the last batch", ["store"],
            registry=r,
        )  # fmt: skip
        self.last_event_age = Gauge(
            p + "last_event_age_seconds",
            "Seconds since the newest event HQ has from the store",
            ["store"],
            registry=r,
        )
        self.missing = Gauge(
            p + "missing_events", "Sequence numbers not received yet, per store", ["store"], registry=r
        )
        self.pending = Gauge(
            p + "consumer_pending", "Messages in the stream not yet fetched by HQ", registry=r
        )
        self.batch_seconds = Histogram(
            p + "batch_seconds", "Time to apply and commit one batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            p + "batch_size",
            "Messages per batch",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000),
            registry=r,
        )
        self.up = Gauge(p + "up", "1 while HQ is connected to NATS and PostgreSQL", registry=r)


def _tls(ca: str, cert: str, key: str, url: str) -> ssl.SSLContext | None:
    if not (ca or cert or url.startswith("tls://")):
        return None
    ctx = ssl.create_default_context(cafile=ca or None)
    if cert:
        ctx.load_cert_chain(cert, key or None)
    return ctx


class Headquarters:
    def __init__(self, config: HqConfig) -> None:
        self.config = config
        self.chain = config.hq.chain
        self.store_ids = [s.id for s in config.stores]
        self.sessions = Sessions(config)
        self.metrics = HqMetrics()
        self.db_ok = False
        self.nats_ok = False
        self.nc: Any = None
        self.js: Any = None
        self.kv: Any = None
        self._web_conn: Any = None
        self._web_lock = asyncio.Lock()
        self.http_port = 0
        self.ingested_total = 0

    def healthy(self) -> bool:
        return self.db_ok and self.nats_ok

    # --- PostgreSQL ---
    async def _connect_db(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(self.config.postgres.dsn, autocommit=True)

    async def query(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
        """Run ``fn(conn, ...)`` on the web's connection (one at a time; reconnects after a failure)."""
        async with self._web_lock:
            if self._web_conn is None or self._web_conn.closed:
                self._web_conn = await self._connect_db()
            try:
                return await fn(self._web_conn, *args, **kw)
            except Exception:
                with contextlib.suppress(Exception):
                    await self._web_conn.close()
                self._web_conn = None
                raise

    # --- NATS ---
    async def _connect_nats(self) -> None:
        import nats
        from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig

        n = self.config.nats

        async def on_disconnect() -> None:
            self.nats_ok = False

        async def on_reconnect() -> None:
            self.nats_ok = True

        async def on_error(exc: Exception) -> None:
            log.warning("NATS: %s", exc)

        opts: dict[str, Any] = {
            "servers": [n.url],
            "name": f"storehub-hq-{self.chain}",
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "connect_timeout": 2,
            "disconnected_cb": on_disconnect,
            "reconnected_cb": on_reconnect,
            "error_cb": on_error,
        }
        if n.user:
            opts["user"], opts["password"] = n.user, n.password
        if n.creds_file:
            opts["user_credentials"] = n.creds_file
        tls = _tls(n.tls_ca, n.tls_cert, n.tls_key, n.url)
        if tls is not None:
            opts["tls"] = tls
        delay = 0.5
        while True:
            try:
                self.nc = await nats.connect(**opts)
                break
            except Exception as exc:
                log.warning("NATS at %s not reachable (%s); trying again", n.url, exc)
                await anyio.sleep(delay)
                delay = min(delay * 2, 10)
        self.js = self.nc.jetstream(timeout=10)
        cfg = StreamConfig(
            name=names.stream_name(self.chain),
            subjects=names.stream_subjects(self.chain),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=self.config.ingest.stream_max_age_days * 86400.0,
            duplicate_window=120.0,
        )
        try:
            await self.js.add_stream(cfg)
        except Exception:
            await self.js.update_stream(cfg)
        self.kv = await self.js.create_key_value(
            KeyValueConfig(bucket=names.catalogue_bucket(self.chain), history=5, direct=True)
        )
        self.nats_ok = True

    async def publish_catalogue(self) -> int:
        return int(await self.query(catalogue.publish, self.kv, self.chain, self.store_ids))

    # --- ingest ---
    async def ingest(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        ing = self.config.ingest
        consumer = ConsumerConfig(
            durable_name=ing.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ing.ack_wait_seconds,
            max_ack_pending=max(ing.batch * (ing.appliers + 2), 1000),
            max_deliver=-1,
        )
        sub = await self.js.pull_subscribe(
            f"chain.{self.chain}.>",
            durable=ing.durable,
            stream=names.stream_name(self.chain),
            config=consumer,
        )
        # the fetcher stays ahead of the appliers; each applier commits its own batches on its own connection
        # (exactly once by the (store, seq) keys; the projections do not depend on the order of batches)
        ahead: asyncio.Queue[list[Any]] = asyncio.Queue(maxsize=ing.appliers)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._fetch, sub, ahead)
            for _ in range(ing.appliers):
                tg.start_soon(self._applier, ahead)

    async def _applier(self, ahead: asyncio.Queue[list[Any]]) -> None:
        conn = await self._connect_db()
        while True:
            msgs = await ahead.get()
            conn = await self._apply(conn, msgs)

    async def _fetch(self, sub: Any, ahead: asyncio.Queue[list[Any]]) -> None:
        import nats.errors

        while True:
            try:
                msgs = await sub.fetch(self.config.ingest.batch, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except Exception as exc:  # NATS restarting: the client reconnects; try again shortly
                log.warning("fetch failed: %s", exc)
                await anyio.sleep(0.5)
                continue
            if msgs:
                await ahead.put(msgs)

    async def _apply(self, conn: Any, msgs: list[Any]) -> Any:
        """Apply one batch in one transaction (retrying while PostgreSQL is away), then acknowledge it."""
        import psycopg.errors

        t0 = time.perf_counter()
        batch = [
            Incoming(subject=m.subject, stream_seq=m.metadata.sequence.stream, data=m.data) for m in msgs
        ]
        while True:
            try:
                if conn.closed:
                    conn = await self._connect_db()
                result = await apply_batch(conn, self.chain, batch)
                self.db_ok = True
                break
            except psycopg.errors.DeadlockDetected:  # two appliers crossed on the same rows: one goes again
                log.info("batch of %d rolled back by a deadlock; applying it again", len(batch))
                await anyio.sleep(0.01)
            except Exception as exc:  # PostgreSQL away: nothing was acknowledged, so try again
                self.db_ok = False
                log.error("batch of %d not applied: %s", len(batch), exc)
                with contextlib.suppress(Exception):
                    await conn.close()
                await anyio.sleep(1.0)
        # acknowledged only now: the batch is committed
        for m in msgs:
            with contextlib.suppress(Exception):
                await m.ack()
        self.metrics.batch_seconds.observe(time.perf_counter() - t0)
        self.metrics.batch_size.observe(len(msgs))
        for store, n in result.new_events.items():
            self.metrics.ingested.labels(store).inc(n)
            self.ingested_total += n
        for store, lag in result.lag_seconds.items():
            self.metrics.lag.labels(store).set(lag)
        if result.duplicates:
            self.metrics.duplicates.inc(result.duplicates)
        if result.rejects:
            self.metrics.rejects.inc(result.rejects)
        with contextlib.suppress(Exception):
            self.metrics.pending.set(msgs[-1].metadata.num_pending)
        return conn

    async def refresh_metrics(self) -> None:
        self.metrics.up.set(1 if self.healthy() else 0)
        try:
            rows = await self.query(_store_rows)
        except Exception:
            self.db_ok = False
            return
        now = time.time()
        for store_id, max_seq, events, last_event_at in rows:
            self.metrics.missing.labels(store_id).set(max_seq - events)
            if last_event_at is not None:
                self.metrics.last_event_age.labels(store_id).set(max(0.0, now - last_event_at.timestamp()))

    # --- the web ---
    async def serve_web(self, sock: socket.socket, shutdown: asyncio.Event) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        cfg = Config()
        cfg.bind = [f"fd://{sock.fileno()}"]
        cfg.accesslog = None
        cfg.errorlog = logging.getLogger("hub.hq.http")
        if self.config.http.tls_cert:
            cfg.certfile, cfg.keyfile = self.config.http.tls_cert, self.config.http.tls_key
        await serve(HqApp(self), cfg, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]

    async def run(self, announce: Callable[[Headquarters], None] | None = None) -> None:
        conn = await self._connect_db()
        try:
            applied = await migrate(conn)
            if applied:
                log.info("schema migrations applied: %s", ", ".join(applied))
            for s in self.config.stores:
                await conn.execute(
                    "INSERT INTO stores (store_id, name, time_zone) VALUES (%s, %s, %s)"
                    " ON CONFLICT (store_id) DO UPDATE SET name = EXCLUDED.name, time_zone = EXCLUDED.time_zone",
                    (s.id, s.name, s.time_zone),
                )
        finally:
            await conn.close()
        self.db_ok = True
        await self._connect_nats()
        await self.publish_catalogue()  # whatever was committed and not yet published before a crash
        h = self.config.http
        sock = socket.create_server((h.host, h.port))
        sock.set_inheritable(True)
        self.http_port = sock.getsockname()[1]
        shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown.set)
        if announce is not None:
            announce(self)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.ingest)
                tg.start_soon(self.serve_web, sock, shutdown)
                await shutdown.wait()
                tg.cancel_scope.cancel()
        finally:
            with contextlib.suppress(Exception):
                await self.nc.close()
            sock.close()


async def _store_rows(conn: Any) -> list[tuple[Any, ...]]:
    cur = await conn.execute("SELECT store_id, max_seq, events, last_event_at FROM stores")
    return list(await cur.fetchall())


def announce(hq: Headquarters) -> None:
    scheme = "https" if hq.config.http.tls_cert else "http"
    host = hq.config.http.host if hq.config.http.host not in ("0.0.0.0", "::") else "localhost"
    print(
        f"\n  storehub hq: chain {hq.chain} ({len(hq.store_ids)} stores)\n"
        f"  Pages and API: {scheme}://{host}:{hq.http_port}/   Metrics: {scheme}://{host}:{hq.http_port}/metrics\n"
        "  Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
