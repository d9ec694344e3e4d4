"""The signals ops are asked about, read when Prometheus scrapes (``refresh``): the store's map and its
readers, the disk, opening hours in the store's zone, cash flags, drawers, manifests, reconciliation, the
audit log's new entries (voids, returns, overrides, lockouts), the audit chain's last verification and the
nightly backup. Counts and timestamps only, never a customer's data.

Reads are short LMDB read transactions on the trio thread (the store's rule), none held across an await.
The backup runs in its own process (``storehub backup``, a systemd timer) and leaves its outcome in
``<[storage] backup_dir>/.storehub-backup-status.json`` (``record_backup``), which is read here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from hub import audit
from hub.audit import AuditEntry
from hub.backoffice.cash_flags import StoredFlag
from hub.domain.drawer import DrawerSession
from hub.domain.outbox import UNSENT, OutboxEntry, overdue
from hub.metrics import Metrics, is_back_office
from hub.state_channel.pulls import Manifest, Reconciliation
from hub.store.keys import from_u64, u64

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.store.env import Store

log = logging.getLogger("hub.signals")
BACKUP_STATUS = ".storehub-backup-status.json"


# ---- opening hours ----
def parse_hours(spec: str) -> tuple[clock_time, clock_time] | None:
    """ "08:00-22:00" (local); "00:00-24:00" = always; the close may be past midnight ("10:00-02:00")."""
    try:
        start, end = (part.strip() for part in spec.split("-"))
        sh, sm = (int(x) for x in start.split(":"))
        eh, em = (int(x) for x in end.split(":"))
        if (eh, em) == (24, 0):
            return clock_time(sh, sm), clock_time(23, 59, 59, 999999)
        return clock_time(sh, sm), clock_time(eh, em)
    except ValueError:
        return None


def is_open(spec: str, local_now: datetime) -> bool:
    hours = parse_hours(spec)
    if hours is None:
        return True  # an unreadable spec must not silence alerts: treat the store as open
    start, end = hours
    now = local_now.time()
    if start <= end:
        return start <= now <= end
    return now >= start or now <= end


# ---- LMDB readers ----
class ReaderWatch:
    """When each open read transaction was first seen, so the oldest one's age is a timestamp."""

    def __init__(self) -> None:
        self.first_seen: dict[tuple[str, str, str], float] = {}

    def observe(self, readers_table: str, now: float) -> list[tuple[tuple[str, str, str], float]]:
        seen: dict[tuple[str, str, str], float] = {}
        for line in readers_table.splitlines()[1:]:
            parts = line.split()
            if len(parts) != 3 or parts[2] == "-":
                continue  # an idle slot (a cached, reset read transaction)
            key = (parts[0], parts[1], parts[2])
            seen[key] = self.first_seen.get(key, now)
        self.first_seen = seen
        return sorted(seen.items(), key=lambda kv: kv[1])


def readers(store: Store, watch: ReaderWatch, now: float) -> tuple[int, float, int]:
    """(open readers, since when the oldest is held or 0, commits since its snapshot)."""
    info = store.env.info()
    held = watch.observe(store.env.readers(), now)
    if not held:
        return 0, 0.0, 0
    oldest_txn = min(int(k[2]) for k, _ in held)
    return len(held), held[0][1], max(0, int(info["last_txnid"]) - oldest_txn)


# ---- the audit log ----
class AuditTail:
    """Counts audit entries committed since the hub started, by action (never their details)."""

    def __init__(self) -> None:
        self.next_seq: int | None = None

    def new_actions(self, store: Store, limit: int = 5000) -> list[str]:
        db = store.db("audit")
        actions: list[str] = []
        with store.env.begin() as txn, txn.cursor(db=db) as cur:
            if self.next_seq is None:  # counters start at 0 at start: skip what was there before
                self.next_seq = from_u64(cur.key()) + 1 if cur.last() else 1
                return []
            if not cur.set_range(u64(self.next_seq)):
                return []
            for k, v in cur:
                try:
                    actions.append(msgspec.msgpack.decode(v, type=_ActionOnly).action)
                except msgspec.DecodeError:
                    actions.append("unreadable")
                self.next_seq = from_u64(k) + 1
                if len(actions) >= limit:
                    break
        return actions


class _ActionOnly(msgspec.Struct, kw_only=True):
    action: str


def store_created_at(store: Store) -> float:

    with store.env.begin() as txn, txn.cursor(db=store.db("audit")) as cur:
        if not cur.first():
            return 0.0
        try:
            return msgspec.msgpack.decode(cur.value(), type=AuditEntry).at.timestamp()
        except msgspec.DecodeError:
            return 0.0


def verify_audit(hub: Hub) -> bool:
    """Walk the chain (run in a worker thread: it reads the whole log in chunks)."""

    checked, broken = audit.verify(hub.store)
    m = hub.metrics
    m.audit_verified.set(time.time())
    m.audit_chain_ok.set(0 if broken else 1)
    if broken is not None:
        log.critical("audit chain verification failed at entry %d: %s", broken.seq, broken.problem)
    else:
        log.info("audit chain verified: %d entries intact", checked)
    return broken is None


# ---- the state system ----
def report_gauges(
    m: Metrics,
    licence: str,
    entries: Iterable[OutboxEntry],
    now: datetime,
    deadline: timedelta,
    last_sent: datetime | None,
) -> None:
    """The outbox as the deadline alerts read it. Each entry's deadline is its creation plus the
    jurisdiction's reporting deadline (hub.state_channel.policy); dead letters have their own alert, so the
    next deadline is that of the entries the hub is still sending."""
    unsent = [e for e in entries if e.state in UNSENT]
    sending = [e for e in unsent if e.state != "dead"]
    m.state_oldest_unsent.labels(licence).set(min(e.created_at for e in unsent).timestamp() if unsent else 0)
    m.state_next_deadline.labels(licence).set(
        min(e.created_at + deadline for e in sending).timestamp() if sending else 0
    )
    # dead letters page as StateSyncDeadLetter: counted here they would stand for, and hide, an outage
    m.state_overdue.labels(licence).set(sum(1 for e in sending if overdue(e, now, deadline)))
    m.state_dead_letter.labels(licence).set(sum(1 for e in unsent if e.state == "dead"))
    if last_sent is not None:
        m.state_last_sent.labels(licence).set(last_sent.timestamp())


# ---- the backup ----
def record_backup(backup_dir: str | os.PathLike[str], *, ok: bool, error: str = "") -> None:
    """Called by ``storehub backup``: leave the outcome where the running hub looks for it."""
    path = Path(backup_dir) / BACKUP_STATUS
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        status = {}
    now = time.time()
    if ok:
        status["last_success"] = now
    else:
        status["last_failure"] = now
        status["last_error"] = error[:200]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    tmp.replace(path)


def backup_status(backup_dir: str) -> tuple[float, float]:
    if not backup_dir:
        return 0.0, 0.0
    try:
        status = json.loads((Path(backup_dir) / BACKUP_STATUS).read_text())
    except (OSError, ValueError):
        return 0.0, 0.0
    return float(status.get("last_success", 0.0)), float(status.get("last_failure", 0.0))


# ---- compliance and money, from the store ----
def _values(store: Store, table: str) -> Iterable[bytes]:
    with store.env.begin() as txn, txn.cursor(db=store.db(table)) as cur:
        return [bytes(v) for _, v in cur]


def cash_flags(store: Store) -> tuple[int, float]:
    """(unreviewed flags, when the oldest of them was raised or 0)."""

    oldest = 0.0
    n = 0
    for raw in _values(store, "cash_flags"):
        try:
            f = msgspec.msgpack.decode(raw, type=StoredFlag)
        except msgspec.DecodeError:
            continue
        if not f.reviews:
            n += 1
            at = f.first_seen_at.timestamp()
            oldest = at if not oldest else min(oldest, at)
    return n, oldest


def drawers(store: Store) -> tuple[int, int, dict[str, int]]:
    """(open drawers, counted but not signed off, variance of each register's last counted drawer)."""

    opened = unsigned = 0
    last: dict[str, tuple[datetime, int]] = {}
    for raw in _values(store, "drawers"):
        try:
            d = msgspec.msgpack.decode(raw, type=DrawerSession)
        except msgspec.DecodeError:
            continue
        if d.status == "open":
            opened += 1
        elif d.status == "counted":
            unsigned += 1
        variance = d.variance_cents
        if variance is not None and d.closing is not None:
            prev = last.get(d.register_id)
            if prev is None or d.closing.at > prev[0]:
                last[d.register_id] = (d.closing.at, variance)
    return opened, unsigned, {r: v for r, (_, v) in last.items()}


def state_records(store: Store) -> tuple[int, int, float]:
    """(manifests not yet received, open discrepancies of the last reconciliation, when it ran or 0)."""

    waiting = 0
    for raw in _values(store, "manifests"):
        try:
            m = msgspec.msgpack.decode(raw, type=Manifest)
        except msgspec.DecodeError:
            continue
        if m.report is None:
            waiting += 1
    with store.env.begin() as txn, txn.cursor(db=store.db("reconciliations")) as cur:
        raw_last = bytes(cur.value()) if cur.last() else None
    if raw_last is None:
        return waiting, 0, 0.0
    try:
        rec = msgspec.msgpack.decode(raw_last, type=Reconciliation)
    except msgspec.DecodeError:
        return waiting, 0, 0.0
    return waiting, sum(1 for d in rec.discrepancies if not d.adjusted_by), rec.at.timestamp()


class Signals:
    """What one hub keeps between scrapes: the audit tail, the readers seen, when the tables were read."""

    # cash flags, drawers and manifests are read whole: at most this often, however often /metrics is
    # asked (Prometheus scrapes every 15 s; anyone on the store's network may ask more). The alerts on
    # them wait minutes to hours, so a value 10 s old changes nothing.
    TABLES_EVERY_S = 10.0

    def __init__(self) -> None:
        self.audit = AuditTail()
        self.readers = ReaderWatch()
        self.created = 0.0
        self.tables_read_at: float | None = None  # time.monotonic() of the last whole-table read

    def start(self, store: Store) -> None:
        self.audit.new_actions(store)  # the first call marks where "since start" begins

    def refresh(self, hub: Hub) -> None:
        m = hub.metrics
        m.store_open.set(1 if is_open(hub.config.store.opening_hours, datetime.now(hub.config.zone)) else 0)
        for reg_id, actor in hub.registers.items():
            if not is_back_office(reg_id) and actor.config.kind != "picker":
                m.register_connected.labels(reg_id).set(1 if actor.connected else 0)
        success, failure = backup_status(hub.config.storage.backup_dir)
        m.backup_last_success.set(success)
        m.backup_last_failure.set(failure)
        if not hub.ready:
            return
        store = hub.store
        now = time.time()
        m.store_used_bytes.set(store.used_bytes())
        m.store_map_bytes.set(store.map_size)
        n, since, lag = readers(store, self.readers, now)
        m.store_readers.set(n)
        m.store_oldest_reader.set(since)
        m.store_reader_lag.set(lag)
        m.audit_entries.set(store.count("audit"))
        disk = shutil.disk_usage(store.path)
        m.disk_free_bytes.set(disk.free)
        m.disk_size_bytes.set(disk.total)
        if not self.created:
            self.created = store_created_at(store) or hub.started_at.timestamp()
        m.store_created.set(self.created)
        for action in self.audit.new_actions(store):
            m.audit_events.labels(action).inc()
        mono = time.monotonic()
        if self.tables_read_at is not None and mono - self.tables_read_at < self.TABLES_EVERY_S:
            return  # the gauges keep the values of the last read
        self.tables_read_at = mono
        try:
            unreviewed, oldest = cash_flags(store)
            m.cash_flags_unreviewed.set(unreviewed)
            m.cash_flag_oldest_unreviewed.set(oldest)
            opened, unsigned, variance = drawers(store)
            m.drawers_open.set(opened)
            m.drawers_unsigned.set(unsigned)
            for reg_id, cents in variance.items():
                if hub.config.register(reg_id) is not None and not is_back_office(reg_id):
                    m.drawer_variance_cents.labels(reg_id).set(cents)
            waiting, discrepancies, reconciled = state_records(store)
            m.manifests_waiting.set(waiting)
            m.reconciliation_discrepancies.set(discrepancies)
            m.reconciliation_last.set(reconciled)
        except ModuleNotFoundError:  # a build without the back office or the state channel
            pass
