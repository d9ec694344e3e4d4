"""Prometheus metrics of one hub. A registry per hub, so tests can run several hubs in one process.

Rules an on-call person relies on (issue 19):

- every labelled series an alert or a panel reads exists from the start at 0 (configured registers, devices,
  actors, outbox licences, the login results and error codes the dashboard shows), so ``increase()`` sees the
  first crash loop after a start (Prometheus instrumentation guide: "initialise labelled metrics at zero");
- points in time are exported as Unix timestamps (``*_timestamp_seconds``), never as ages: an age is frozen
  when the actor that updates it stalls, a timestamp is not; 0 means "never";
- no ``*_created`` series; histogram buckets reach past the timeouts they measure;
- counts and timestamps only: no customer, no staff name, no number from an ID ever becomes a label.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE

if TYPE_CHECKING:
    from hub.config import StoreConfig

# 55 `*_created` series told nobody anything; the switch is process-wide in prometheus-client
disable_created_metrics()

# handling an actor message or an LMDB read: microseconds matter; a handler waits up to its timeout_s
# (60 s by default, `pay` 330 s for the card: hub.sale.card.PAY_WAIT_S), so the top bucket is past both
FAST = (25e-6, 50e-6, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05, 0.25, 1.0, 2.5, 10.0, 60.0, 600.0)
# durable commits, WebSocket round trips
COMMIT = (1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 5.0)
# state-system requests: the client's timeout is 10 s by default ([state_system] timeout_seconds), and a
# slow state answers in tens of seconds; buckets past both, so a timeout is not hidden in +Inf
STATE = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)
BATCH = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

LOGIN_RESULTS = ("ok", "failed", "locked")
WS_REJECT_REASONS = ("origin",)
# error codes the dashboard's money and security panels read: limit refusals, card declines, PIN refusals
WATCHED_ERROR_CODES = (
    "over_limit",
    "card_declined",
    "card_timeout",
    "card_offline",
    "approval_refused",
    "not_logged_in",
    "forbidden",
    "internal_error",
    "timeout",
)
# audit actions counted as they are committed (hub.signals tails the audit log): money, overrides, security
WATCHED_AUDIT_ACTIONS = (
    "sale",
    "void",
    "return",
    "override",
    "override_refused",
    "check_in_refused",
    "login_failed",
    "lockout",
    "login_refused_locked",
    "pairing_failed",
    "bad_pairing_code",
    "message_quarantined",
    "cash_flag_raised",
    "cash_flag_reviewed",
    "drawer_opened",
    "drawer_counted",
    "drawer_signed_off",
    "state_dead_letter",
    "state_adjustment",
    "inventory_adjustment",
)
STATE_ERROR_KINDS = ("unavailable", "outcome_unknown", "rejected", "rate_limited", "auth")


def is_back_office(register_id: str) -> bool:
    """The back office is enrolled like a register (``OFFICE``…, as hub.backoffice.cash_flags.is_office),
    but no sale depends on it: it is not a register in these metrics, so closing its tab pages nobody."""
    return register_id.upper().startswith("OFFICE")


def _version() -> str:
    try:
        return metadata.version("storehub")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "storehub_"
        # process_* (memory, CPU, open fds, start time) and python_info, as every Prometheus target has
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.build_info = Info(p + "build", "The running storehub build", registry=r)
        self.build_info.info({"version": _version(), "python": platform.python_version()})

        # ---- actors ----
        self.mailbox_depth = Gauge(
            p + "mailbox_depth", "Messages waiting in an actor's mailbox", ["actor"], registry=r
        )
        self.actor_restarts = Counter(
            p + "actor_restarts", "Actor restarts after a crash", ["actor"], registry=r
        )
        self.actor_up = Gauge(p + "actor_up", "1 while the actor runs", ["actor"], registry=r)
        self.actor_parked = Gauge(
            p + "actor_parked",
            "1 while the actor is parked: it failed past its restart intensity and waits to be tried again",
            ["actor"],
            registry=r,
        )
        self.quarantined = Counter(
            p + "quarantined_messages",
            "Messages that crashed an actor twice and were set aside",
            ["actor"],
            registry=r,
        )

        # ---- the live protocol ----
        self.ws_connections = Gauge(p + "ws_connections", "Open WebSocket connections", registry=r)
        self.ws_rejected = Counter(p + "ws_rejected", "Refused WebSocket handshakes", ["reason"], registry=r)
        self.message_seconds = Histogram(
            p + "message_handling_seconds",
            "Time to handle one client message",
            ["type"],
            buckets=FAST,
            registry=r,
        )
        self.message_errors = Counter(
            p + "message_errors", "Client messages answered with an error", ["code"], registry=r
        )
        self.register_connected = Gauge(
            p + "register_connected",
            "1 while a browser is connected to the register (every configured register; not the back office)",
            ["register"],
            registry=r,
        )
        self.store_open = Gauge(
            p + "store_open",
            "1 during the store's opening hours ([store] opening_hours, in the store's time zone)",
            registry=r,
        )

        # ---- the store ----
        self.writer_batch_size = Histogram(
            p + "writer_batch_size",
            "Write requests committed per LMDB transaction",
            buckets=BATCH,
            registry=r,
        )
        self.writer_commit_seconds = Histogram(
            p + "writer_commit_seconds", "Durable LMDB commit time of one batch", buckets=COMMIT, registry=r
        )
        self.store_map_grown = Counter(p + "store_map_grown", "Times the LMDB map was grown", registry=r)
        self.store_write_failures = Counter(
            p + "store_write_failures",
            "Store commits that failed (full disk or map, disk error)",
            ["code"],
            registry=r,
        )
        self.store_used_bytes = Gauge(p + "store_used_bytes", "Bytes of the LMDB map in use", registry=r)
        self.store_map_bytes = Gauge(p + "store_map_bytes", "Size of the LMDB map", registry=r)
        self.store_stale_readers = Counter(
            p + "store_stale_readers", "Stale LMDB readers cleared", registry=r
        )
        self.store_readers = Gauge(p + "store_readers", "Open LMDB read transactions", registry=r)
        self.store_oldest_reader = Gauge(
            p + "store_oldest_reader_since_timestamp_seconds",
            "Since when the oldest open LMDB read transaction has been held (0: none); a long-held reader "
            "stops page reuse and the map fills",
            registry=r,
        )
        self.store_reader_lag = Gauge(
            p + "store_reader_lag_transactions",
            "Commits since the snapshot of the oldest open LMDB read transaction",
            registry=r,
        )
        self.store_created = Gauge(
            p + "store_created_timestamp_seconds",
            "When this store was created (its first audit entry)",
            registry=r,
        )
        self.disk_free_bytes = Gauge(
            p + "disk_free_bytes", "Free bytes on the data directory's disk", registry=r
        )
        self.disk_size_bytes = Gauge(p + "disk_size_bytes", "Size of the data directory's disk", registry=r)

        # ---- selling ----
        self.logins = Counter(p + "logins", "Staff login attempts", ["result"], registry=r)
        self.sales = Counter(p + "sales", "Sales committed", ["register"], registry=r)
        self.card_reversals_failed = Counter(
            p + "card_reversals_failed",
            "Card payments to give back whose void the terminal did not confirm (money may be taken)",
            registry=r,
        )
        self.card_reversals_pending = Gauge(
            p + "card_reversals_pending",
            "Card payments still to give back at the terminal (retried until confirmed)",
            registry=r,
        )
        self.scan_seconds = Histogram(p + "scan_seconds", "Scan to cart update", buckets=FAST, registry=r)

        # ---- devices ----
        self.device_up = Gauge(p + "device_up", "1 while the device answers", ["device", "kind"], registry=r)
        self.device_errors = Counter(
            p + "device_errors", "Device protocol errors", ["device", "kind"], registry=r
        )
        self.device_last_reading = Gauge(
            p + "device_last_reading_timestamp_seconds",
            "When the device last reported a valid frame (0: not yet)",
            ["device", "kind"],
            registry=r,
        )
        self.printer_queued_jobs = Gauge(
            p + "printer_queued_jobs",
            "Print jobs waiting for the printer (down or out of paper)",
            ["device", "kind"],
            registry=r,
        )
        self.printer_paper_out = Gauge(
            p + "printer_paper_out",
            "1 while the printer says its paper (a Zebra: its media) is out, 0 otherwise or while unreachable",
            ["device", "kind"],
            registry=r,
        )

        # ---- the CRM bridge (its own outbox, hub/crm/outbox_store.py) ----
        self.crm_outbox_pending = Gauge(
            p + "crm_outbox_pending",
            "CRM outbox entries not yet accepted by the CRM (dead letters too)",
            registry=r,
        )
        self.crm_outbox_oldest_pending = Gauge(
            p + "crm_outbox_oldest_pending_timestamp_seconds",
            "When the oldest CRM outbox entry not yet accepted was created (0: none)",
            registry=r,
        )

        # ---- the state system ----
        self.state_backlog = Gauge(
            p + "state_backlog", "Outbox entries not yet accepted by the state", ["licence"], registry=r
        )
        self.state_oldest_unsent = Gauge(
            p + "state_oldest_unsent_timestamp_seconds",
            "When the oldest unsent outbox entry was created (0: nothing unsent)",
            ["licence"],
            registry=r,
        )
        self.state_next_deadline = Gauge(
            p + "state_next_deadline_timestamp_seconds",
            "The earliest reporting deadline (created + the jurisdiction's deadline) among the entries the "
            "hub is still sending (0: none)",
            ["licence"],
            registry=r,
        )
        self.state_deadline_seconds = Gauge(
            p + "state_reporting_deadline_seconds",
            "How long the jurisdiction allows between a sale and its report to the state",
            ["licence"],
            registry=r,
        )
        self.state_overdue = Gauge(
            p + "state_overdue_entries",
            "Outbox entries still being sent (not dead letters) past the jurisdiction's reporting deadline",
            ["licence"],
            registry=r,
        )
        self.state_dead_letter = Gauge(
            p + "state_dead_letter", "Outbox entries a person must fix", ["licence"], registry=r
        )
        self.state_send_seconds = Histogram(
            p + "state_send_seconds", "State-system request time", ["licence"], buckets=STATE, registry=r
        )
        self.state_errors = Counter(
            p + "state_errors", "State-system errors by kind", ["licence", "kind"], registry=r
        )
        self.state_last_sent = Gauge(
            p + "state_last_sent_timestamp_seconds",
            "When the state last accepted an entry from this hub (0: not since start)",
            ["licence"],
            registry=r,
        )
        self.state_last_pull = Gauge(
            p + "state_last_pull_timestamp_seconds",
            "When packages and manifests were last pulled from the state (0: not since start)",
            ["licence"],
            registry=r,
        )
        self.manifests_waiting = Gauge(
            p + "manifests_waiting", "Incoming transfer manifests not yet received", registry=r
        )
        self.reconciliation_discrepancies = Gauge(
            p + "reconciliation_discrepancies",
            "Discrepancies found by the last reconciliation against the state and not yet adjusted",
            registry=r,
        )
        self.reconciliation_last = Gauge(
            p + "reconciliation_last_timestamp_seconds",
            "When the inventory was last reconciled against the state (0: never)",
            registry=r,
        )

        # ---- compliance, money, security (hub.signals) ----
        self.audit_entries = Gauge(p + "audit_entries", "Entries in the audit log", registry=r)
        self.audit_events = Counter(
            p + "audit_events",
            "Audit-log entries committed since start, by action (voids, returns, overrides, lockouts, ...)",
            ["action"],
            registry=r,
        )
        self.audit_verified = Gauge(
            p + "audit_last_verification_timestamp_seconds",
            "When the audit chain was last verified (0: not since start)",
            registry=r,
        )
        self.audit_chain_ok = Gauge(
            p + "audit_chain_ok",
            "1 when the last verification found the audit chain intact, 0 when it found a break",
            registry=r,
        )
        self.cash_flags_unreviewed = Gauge(
            p + "cash_flags_unreviewed", "Cash (Form 8300) flags no manager has reviewed", registry=r
        )
        self.cash_flag_oldest_unreviewed = Gauge(
            p + "cash_flag_oldest_unreviewed_timestamp_seconds",
            "When the oldest unreviewed cash flag was raised (0: none)",
            registry=r,
        )
        self.drawers_open = Gauge(p + "drawers_open", "Cash drawers open for selling", registry=r)
        self.drawers_unsigned = Gauge(
            p + "drawers_unsigned", "Drawers counted at close but not yet signed off by a manager", registry=r
        )
        self.drawer_variance_cents = Gauge(
            p + "drawer_variance_cents",
            "Counted minus expected cash of the register's last counted drawer (negative: short)",
            ["register"],
            registry=r,
        )
        self.backup_last_success = Gauge(
            p + "backup_last_success_timestamp_seconds",
            "When the last nightly backup succeeded (0: never seen)",
            registry=r,
        )
        self.backup_last_failure = Gauge(
            p + "backup_last_failure_timestamp_seconds",
            "When a backup last failed (0: never seen)",
            registry=r,
        )

    # ---- series that exist from the start ----
    def configure(self, config: StoreConfig) -> None:
        """Create every configured register's and device's series at 0, before anything happens."""
        for reg in config.registers:
            if not is_back_office(reg.id):
                if reg.kind != "picker":  # a handheld asleep in its cradle is not a register down
                    self.register_connected.labels(reg.id).set(0)
                self.sales.labels(reg.id)
                self.drawer_variance_cents.labels(reg.id).set(0)
        for dev in config.devices:
            self.device(dev.id, dev.kind)
        for result in LOGIN_RESULTS:
            self.logins.labels(result)
        for reason in WS_REJECT_REASONS:
            self.ws_rejected.labels(reason)
        for code in WATCHED_ERROR_CODES:
            self.message_errors.labels(code)
        for action in WATCHED_AUDIT_ACTIONS:
            self.audit_events.labels(action)
        for code in ("storage_full", "storage_error"):
            self.store_write_failures.labels(code)
        self.audit_chain_ok.set(1)
        self.crm_outbox_pending.set(0)
        self.crm_outbox_oldest_pending.set(0)

    def device(self, device_id: str, kind: str) -> None:
        self.device_up.labels(device_id, kind).set(0)
        self.device_errors.labels(device_id, kind)
        self.device_last_reading.labels(device_id, kind).set(0)
        if kind in ("printer", "label_printer"):
            self.printer_queued_jobs.labels(device_id, kind).set(0)
            self.printer_paper_out.labels(device_id, kind).set(0)

    def actor(self, name: str) -> None:
        self.actor_restarts.labels(name)
        self.actor_parked.labels(name).set(0)
        self.quarantined.labels(name)

    def licence(self, licence: str, deadline_seconds: float) -> None:
        self.state_backlog.labels(licence).set(0)
        self.state_oldest_unsent.labels(licence).set(0)
        self.state_next_deadline.labels(licence).set(0)
        self.state_deadline_seconds.labels(licence).set(deadline_seconds)
        self.state_overdue.labels(licence).set(0)
        self.state_dead_letter.labels(licence).set(0)
        self.state_last_sent.labels(licence).set(0)
        self.state_last_pull.labels(licence).set(0)
        self.state_send_seconds.labels(licence)
        for kind in STATE_ERROR_KINDS:
            self.state_errors.labels(licence, kind)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics", "CONTENT_TYPE", "is_back_office"]
