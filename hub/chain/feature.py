"""The chain feature in the hub (issue 17): the link child process, its status and metrics, the catalogue applied from HQ.

hub/wiring.py wires the feature in: when store.toml has a ``[chain]`` section the hub supervises a child
process, the chain link (:mod:`hub.chain.link`), which ships the audit log to NATS JetStream and fetches
this store's catalogue document; the hub applies that document through its writer (:mod:`.catalogue`).
Backlog, last-ack age and the catalogue version in use are in ``/metrics`` and ``GET /api/chain/status``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import trio
from prometheus_client import Gauge

from hub.chain import catalogue
from hub.chain.events import catalogue_version, last_seq
from hub.chain.link import LinkSettings, load_position
from hub.http_server import HttpRequest, HttpResponse, RouteTable, require_staff
from hub.supervisor import ChildSpec, Supervisor

if TYPE_CHECKING:
    from hub.app import Hub

# the REST routes this module serves; hub/wiring.py joins it into the hub's table
ROUTES = RouteTable()

log = logging.getLogger("hub.chain")


class LinkExited(RuntimeError):
    pass


class ChainState:
    """What the hub knows of its link: the acknowledged position, whether it is connected, the version."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.acked_seq = 0
        self.acked_at: datetime | None = None
        self.up = False
        self.last_error = ""
        self.version = 0
        self.started = time.time()

    def backlog(self) -> int:
        h = self.hub
        if h.config.chain is None or not h.ready:
            return 0
        return max(0, last_seq(h.store) - self.acked_seq)

    def ack_age(self) -> float:
        if self.hub.config.chain is None:
            return 0.0
        since = self.acked_at.timestamp() if self.acked_at else self.started
        return max(0.0, time.time() - since)

    def as_json(self) -> dict[str, Any]:
        cfg = self.hub.config.chain
        return {
            "chain": cfg.chain if cfg else "",
            "store_id": cfg.store_id if cfg else "",
            "connected": self.up,
            "last_error": self.last_error,
            "acked_seq": self.acked_seq,
            "acked_at": self.acked_at.isoformat() if self.acked_at else None,
            "backlog": self.backlog(),
            "last_ack_age_seconds": round(self.ack_age(), 1),
            "catalogue_version": self.version,
        }


def chain_of(hub: Hub) -> ChainState:
    state = hub.services.chain
    if state is None:
        raise LookupError("This hub runs no chain state.")
    return state


def register_metrics(hub: Hub, state: ChainState) -> None:
    r = hub.metrics.registry
    Gauge(
        "storehub_chain_backlog", "Committed events not yet acknowledged by HQ's JetStream", registry=r
    ).set_function(state.backlog)
    Gauge(
        "storehub_chain_last_ack_age_seconds",
        "Seconds since JetStream last acknowledged this store's events (0 outside a chain)",
        registry=r,
    ).set_function(state.ack_age)
    Gauge(
        "storehub_chain_last_ack_timestamp_seconds",
        "When JetStream last acknowledged this store's events (Unix time; 0 = never)",
        registry=r,
    ).set_function(lambda: state.acked_at.timestamp() if state.acked_at else 0.0)
    Gauge(
        "storehub_chain_configured", "1 when this store is one of a chain ([chain] in store.toml)", registry=r
    ).set_function(lambda: 1.0 if hub.config.chain is not None else 0.0)
    Gauge("storehub_chain_link_up", "1 while the chain link is connected to NATS", registry=r).set_function(
        lambda: 1.0 if state.up else 0.0
    )
    Gauge(
        "storehub_chain_catalogue_version", "Version of HQ's catalogue and prices this store runs", registry=r
    ).set_function(lambda: float(state.version))


async def start(hub: Hub, sup: Supervisor, state: ChainState) -> None:
    """The acknowledged position and the catalogue version in force, HQ's stored promotions, then the link."""
    pos = await trio.to_thread.run_sync(load_position, hub.config.data_dir)
    state.acked_seq, state.acked_at = pos.seq, pos.acked_at
    state.version = catalogue_version(hub.store)
    try:
        doc = catalogue.stored_doc(hub.store)
        if doc is not None:  # the last version from HQ stays in force across restarts
            _, promos = catalogue.check(doc)
            _use_promotions(hub, promos)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        # the products and prices are in the store's tables anyway; only HQ's promotions wait for the next version
        log.exception("the stored catalogue document from HQ cannot be read; its promotions are not in force")
    await sup.start(
        ChildSpec(name="chain-link", run=lambda task_status: run_link(hub, task_status=task_status))
    )


def _use_promotions(hub: Hub, promos: Any) -> None:
    ctx = hub.services.sale
    if ctx is not None and promos is not None:
        ctx.settings.promotions = tuple(promos)
        live = hub.services.catalogue
        if live is not None:  # the live catalogue (issue 16) re-prices every register's cart
            live.promotions = ctx.settings.promotions
            live.refresh()
        elif hasattr(ctx, "price_cache"):
            ctx.price_cache.clear()


async def apply_catalogue(hub: Hub, doc: catalogue.CatalogueDoc) -> bool:
    """Apply a document from HQ (idempotent by version); True when it changed what this store runs."""
    cfg = hub.config.chain
    if cfg is None or doc.chain != cfg.chain or doc.store != cfg.store_id:
        log.warning("catalogue document for %s/%s refused: this store is not it", doc.chain, doc.store)
        return False
    applied = await hub.writer.write(
        lambda txn: catalogue.apply(txn, hub.store, doc), label="chain_catalogue"
    )
    if applied is None:
        return False
    ctx = hub.services.sale
    if ctx is not None:
        for p in applied.products:
            ctx.index.upsert(p)
    _use_promotions(hub, applied.promotions)
    chain_of(hub).version = applied.version
    log.info(
        "catalogue version %d from HQ applied (%d products changed)", applied.version, len(applied.products)
    )
    return True


def link_settings(hub: Hub) -> LinkSettings:
    cfg = hub.config
    c = cfg.chain
    assert c is not None
    return LinkSettings(
        data_dir=str(cfg.data_dir),
        map_size=cfg.storage.map_size_mb << 20,
        time_zone=cfg.store.time_zone,
        chain=c.chain,
        store_id=c.store_id,
        nats_url=c.nats_url,
        user=c.user,
        password=c.password,
        creds_file=c.creds_file,
        tls_ca=c.tls_ca,
        tls_cert=c.tls_cert,
        tls_key=c.tls_key,
        batch=c.batch,
        poll_seconds=c.poll_seconds,
        catalogue_poll_seconds=c.catalogue_poll_seconds,
        status_seconds=c.status_seconds,
    )


async def run_link(hub: Hub, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """One life of the link process; returns never, raises LinkExited when it dies (the supervisor
    restarts it with backoff)."""
    state = chain_of(hub)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "hub.chain.link"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        # the settings (with the NATS password) go over the pipe, not the command line
        await proc.stdin.send_all(msgspec.json.encode(link_settings(hub)) + b"\n")
        task_status.started()
        buf = b""
        while True:
            chunk = await proc.stdout.receive_some(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                await _on_line(hub, state, line)
        code = await proc.wait()
        state.up = False
        raise LinkExited(f"the chain link exited with status {code}")
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await proc.stdin.aclose()
            await proc.stdout.aclose()


async def _on_line(hub: Hub, state: ChainState, line: bytes) -> None:
    try:
        msg = json.loads(line)
    except ValueError:
        log.warning("chain link said something unreadable: %r", line[:200])
        return
    kind = msg.get("t")
    if kind == "acked":
        state.acked_seq = int(msg["seq"])
        state.acked_at = datetime.fromisoformat(msg["at"])
        state.up = True
    elif kind == "link":
        state.up = bool(msg.get("up"))
        state.last_error = str(msg.get("error", ""))
        if state.last_error:
            log.info("chain link: %s", state.last_error)
    elif kind == "catalogue":
        try:
            doc = msgspec.convert(msg["doc"], catalogue.CatalogueDoc)
            await apply_catalogue(hub, doc)
        except (msgspec.ValidationError, ValueError) as exc:
            log.error("catalogue document from HQ refused: %s", exc)


@ROUTES.route("GET", "/api/chain/status")
async def chain_status(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    return HttpResponse.json({**chain_of(hub).as_json(), "now": datetime.now(UTC).isoformat()})
