"""Prometheus metrics of one hub. A registry per hub, so tests can run several hubs in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE

# handling an actor message or an LMDB read: microseconds matter
FAST = (25e-6, 50e-6, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05, 0.25, 1.0, 2.5)
# durable commits, WebSocket round trips
COMMIT = (1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 5.0)
BATCH = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "storehub_"
        self.mailbox_depth = Gauge(
            p + "mailbox_depth", "Messages waiting in an actor's mailbox", ["actor"], registry=r
        )
        self.actor_restarts = Counter(
            p + "actor_restarts", "Actor restarts after a crash", ["actor"], registry=r
        )
        self.actor_up = Gauge(p + "actor_up", "1 while the actor runs", ["actor"], registry=r)
        self.quarantined = Counter(
            p + "quarantined_messages",
            "Messages that crashed an actor twice and were set aside",
            ["actor"],
            registry=r,
        )
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
        self.audit_entries = Gauge(p + "audit_entries", "Entries in the audit log", registry=r)
        self.logins = Counter(p + "logins", "Staff login attempts", ["result"], registry=r)
        self.sales = Counter(p + "sales", "Sales committed", ["register"], registry=r)
        self.scan_seconds = Histogram(p + "scan_seconds", "Scan to cart update", buckets=FAST, registry=r)
        self.device_up = Gauge(p + "device_up", "1 while the device answers", ["device", "kind"], registry=r)
        self.device_errors = Counter(
            p + "device_errors", "Device protocol errors", ["device", "kind"], registry=r
        )
        self.device_last_reading_age = Gauge(
            p + "device_last_reading_age_seconds",
            "Seconds since the device last reported",
            ["device"],
            registry=r,
        )
        self.register_connected = Gauge(
            p + "register_connected", "1 while a browser register is connected", ["register"], registry=r
        )
        self.state_backlog = Gauge(
            p + "state_backlog", "Outbox entries not yet accepted by the state", ["licence"], registry=r
        )
        self.state_oldest_unsent_age = Gauge(
            p + "state_oldest_unsent_age_seconds",
            "Age of the oldest unsent outbox entry",
            ["licence"],
            registry=r,
        )
        self.state_dead_letter = Gauge(
            p + "state_dead_letter", "Outbox entries a person must fix", ["licence"], registry=r
        )
        self.state_send_seconds = Histogram(
            p + "state_send_seconds", "State-system request time", ["licence"], buckets=COMMIT, registry=r
        )
        self.state_errors = Counter(
            p + "state_errors", "State-system errors by kind", ["licence", "kind"], registry=r
        )
        self.disk_free_bytes = Gauge(
            p + "disk_free_bytes", "Free bytes on the data directory's disk", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics", "CONTENT_TYPE"]
