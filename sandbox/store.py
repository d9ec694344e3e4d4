"""The sandbox's own persistent state: one sqlite3 file in its data directory.

Plain tables for what the emulated state systems keep (facilities, items, packages, receipts, adjustments,
transfers with deliveries and packages, patients and caregivers, BioTrack sessions and sales). The sandbox is
single-threaded (trio), so one connection in autocommit-off mode with explicit transactions is enough.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox import demo

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (user_key TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vendors (vendor_key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS facilities (
    license TEXT PRIMARY KEY, name TEXT NOT NULL, time_zone TEXT NOT NULL, license_type TEXT NOT NULL,
    system TEXT NOT NULL DEFAULT 'metrc');
CREATE TABLE IF NOT EXISTS user_facilities (user_key TEXT, license TEXT, PRIMARY KEY (user_key, license));
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY, license TEXT NOT NULL, name TEXT NOT NULL, category TEXT NOT NULL,
    unit TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packages (
    id INTEGER PRIMARY KEY, license TEXT NOT NULL, label TEXT NOT NULL UNIQUE, item_id INTEGER NOT NULL,
    quantity REAL NOT NULL, unit TEXT NOT NULL, on_hold INTEGER NOT NULL DEFAULT 0,
    finished_date TEXT, packaged_date TEXT NOT NULL, lab_state TEXT NOT NULL DEFAULT 'TestPassed',
    received_manifest TEXT, received_from_license TEXT, received_from_name TEXT, received_at TEXT,
    note TEXT, last_modified TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY, license TEXT NOT NULL, receipt_number TEXT NOT NULL, external_number TEXT,
    sales_date_time TEXT NOT NULL, customer_type TEXT NOT NULL, patient_license TEXT,
    caregiver_license TEXT, identification_method TEXT, is_final INTEGER NOT NULL DEFAULT 0,
    archived_date TEXT, recorded_at TEXT NOT NULL, recorded_by TEXT NOT NULL, last_modified TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS receipts_external ON receipts (license, external_number);
CREATE TABLE IF NOT EXISTS receipt_lines (
    receipt_id INTEGER NOT NULL, line INTEGER NOT NULL, package_label TEXT NOT NULL, quantity REAL NOT NULL,
    unit TEXT NOT NULL, total_amount REAL NOT NULL, PRIMARY KEY (receipt_id, line));
CREATE TABLE IF NOT EXISTS adjustments (
    id INTEGER PRIMARY KEY, license TEXT NOT NULL, label TEXT NOT NULL, quantity REAL NOT NULL,
    unit TEXT NOT NULL, reason TEXT NOT NULL, adjustment_date TEXT NOT NULL, note TEXT,
    mode TEXT NOT NULL, recorded_at TEXT NOT NULL, recorded_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transfers (
    id INTEGER PRIMARY KEY, manifest_number TEXT NOT NULL, shipper_license TEXT NOT NULL,
    shipper_name TEXT NOT NULL, created_at TEXT NOT NULL, last_modified TEXT NOT NULL, voided INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY, transfer_id INTEGER NOT NULL, recipient_license TEXT NOT NULL,
    recipient_name TEXT NOT NULL, estimated_arrival TEXT NOT NULL, received_at TEXT);
CREATE TABLE IF NOT EXISTS delivery_packages (
    id INTEGER PRIMARY KEY, delivery_id INTEGER NOT NULL, label TEXT NOT NULL, item_name TEXT NOT NULL,
    category TEXT NOT NULL, shipped_quantity REAL NOT NULL, shipped_unit TEXT NOT NULL,
    received_quantity REAL, state TEXT NOT NULL DEFAULT 'Shipped', reason TEXT);
CREATE TABLE IF NOT EXISTS patients (
    patient_license TEXT PRIMARY KEY, active INTEGER NOT NULL, flower_oz REAL NOT NULL, thc_oz REAL NOT NULL,
    purchase_days REAL NOT NULL);
CREATE TABLE IF NOT EXISTS caregivers (caregiver_license TEXT PRIMARY KEY, active INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bt_users (
    license TEXT NOT NULL, ubi TEXT NOT NULL, username TEXT NOT NULL, password TEXT NOT NULL,
    PRIMARY KEY (license, username));
CREATE TABLE IF NOT EXISTS bt_sessions (token TEXT PRIMARY KEY, license TEXT NOT NULL, username TEXT,
    expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS bt_sales (
    transaction_id INTEGER PRIMARY KEY, license TEXT NOT NULL, api TEXT NOT NULL, terminal_id TEXT,
    sale_time TEXT NOT NULL, sale_type TEXT NOT NULL, card_id TEXT, external_id TEXT, request_id TEXT,
    nonce TEXT, items TEXT NOT NULL, voided INTEGER NOT NULL DEFAULT 0, refunded TEXT NOT NULL DEFAULT '[]',
    sync_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bt_replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bt_cards (card_id TEXT PRIMARY KEY, card_key TEXT NOT NULL, active INTEGER NOT NULL,
    limit_g REAL NOT NULL, expires TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bt_sync (license TEXT NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT,
    object TEXT NOT NULL, ref TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_z(moment: datetime) -> str:
    """UTC instant in the form the Metrc description declares: yyyy-mm-ddThh:mm:ssZ."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SandboxStore:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    def all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return list(self.db.execute(sql, args))

    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        return self.db.execute(sql, args).fetchone()

    def bump(self, name: str, by: int = 1) -> int:
        self.db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )
        row = self.one("SELECT value FROM counters WHERE name = ?", name)
        assert row is not None
        return int(row["value"])

    def counter(self, name: str) -> int:
        row = self.one("SELECT value FROM counters WHERE name = ?", name)
        return int(row["value"]) if row else 0

    def reset(self) -> None:
        with self.transaction() as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                if table != "sqlite_sequence":
                    db.execute(f"DELETE FROM {table}")

    # -- seeding -----------------------------------------------------------------------------------------

    def upsert_package(
        self,
        license: str,
        label: str,
        item_name: str,
        category: str,
        unit: str,
        quantity: float,
        *,
        on_hold: bool = False,
        finished: bool = False,
    ) -> None:
        now = iso_z(utc_now())
        item = self.one("SELECT id FROM items WHERE license = ? AND name = ?", license, item_name)
        if item is None:
            cur = self.db.execute(
                "INSERT INTO items (license, name, category, unit) VALUES (?, ?, ?, ?)",
                (license, item_name, category, unit),
            )
            item_id = cur.lastrowid
        else:
            item_id = item["id"]
        self.db.execute(
            "INSERT INTO packages (license, label, item_id, quantity, unit, on_hold, finished_date, "
            "packaged_date, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(label) DO UPDATE SET license = excluded.license, item_id = excluded.item_id, "
            "quantity = excluded.quantity, unit = excluded.unit, on_hold = excluded.on_hold, "
            "finished_date = excluded.finished_date, last_modified = excluded.last_modified",
            (
                license,
                label,
                item_id,
                quantity,
                unit,
                int(on_hold),
                now[:10] if finished else None,
                now[:10],
                now,
            ),
        )

    def seed_demo(self) -> None:
        now = utc_now()
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO vendors VALUES (?)", (demo.METRC_VENDOR_KEY,))
            for key, name in (
                (demo.METRC_USER_KEY, demo.METRC_USER_NAME),
                (demo.METRC_MANAGER_KEY, demo.METRC_MANAGER_NAME),
            ):
                db.execute("INSERT OR IGNORE INTO users VALUES (?, ?)", (key, name))
                db.execute("INSERT OR IGNORE INTO user_facilities VALUES (?, ?)", (key, demo.METRC_LICENSE))
            db.execute(
                "INSERT OR IGNORE INTO facilities VALUES (?, ?, ?, ?, 'metrc')",
                (demo.METRC_LICENSE, demo.METRC_FACILITY_NAME, demo.METRC_TIME_ZONE, "Retail Store"),
            )
            db.execute(
                "INSERT OR IGNORE INTO facilities VALUES (?, ?, ?, ?, 'metrc')",
                (demo.SHIPPER_LICENSE, demo.SHIPPER_NAME, demo.METRC_TIME_ZONE, "Cultivation"),
            )
            # Seeding an existing data dir adds what is missing and keeps what has changed since.
            for label, name, category, unit, qty, _price in demo.METRC_PACKAGES:
                if self.one("SELECT 1 FROM packages WHERE label = ?", label) is None:
                    self.upsert_package(demo.METRC_LICENSE, label, name, category, unit, qty)
            if (
                self.one("SELECT 1 FROM transfers WHERE manifest_number = ?", demo.INCOMING_MANIFEST_NUMBER)
                is None
            ):
                self.add_incoming_transfer(
                    demo.INCOMING_MANIFEST_NUMBER,
                    demo.SHIPPER_LICENSE,
                    demo.SHIPPER_NAME,
                    demo.METRC_LICENSE,
                    [(label, name, cat, unit, qty) for label, name, cat, unit, qty in demo.INCOMING_PACKAGES],
                    arrival=now + timedelta(hours=2),
                )
            for lic, active, flower, thc, days in demo.PATIENTS:
                db.execute(
                    "INSERT OR IGNORE INTO patients VALUES (?, ?, ?, ?, ?)",
                    (lic, int(active), flower, thc, days),
                )
            for lic, active in demo.CAREGIVERS:
                db.execute("INSERT OR IGNORE INTO caregivers VALUES (?, ?)", (lic, int(active)))
            # BioTrack
            db.execute(
                "INSERT OR IGNORE INTO facilities VALUES (?, ?, ?, ?, 'biotrack')",
                (demo.BIOTRACK_LICENSE, "Demo Dispensary (BioTrack)", demo.BIOTRACK_TIME_ZONE, "Dispensary"),
            )
            db.execute(
                "INSERT OR IGNORE INTO bt_users VALUES (?, ?, ?, ?)",
                (demo.BIOTRACK_LICENSE, demo.BIOTRACK_UBI, demo.BIOTRACK_USERNAME, demo.BIOTRACK_PASSWORD),
            )
            for barcode, name, qty, unit in demo.BIOTRACK_INVENTORY:
                if self.one("SELECT 1 FROM packages WHERE label = ?", barcode) is not None:
                    continue
                self.upsert_package(
                    demo.BIOTRACK_LICENSE, barcode, name, "Usable", "Grams" if unit == "g" else "Each", qty
                )
            for card_id, key, active, limit_g in demo.BIOTRACK_CARDS:
                expires = (now + timedelta(days=180 if active else -10)).date().isoformat()
                db.execute(
                    "INSERT OR IGNORE INTO bt_cards VALUES (?, ?, ?, ?, ?)",
                    (card_id, key, int(active), limit_g, expires),
                )
            if self.one("SELECT 1 FROM transfers WHERE manifest_number = 'BT-0000501'") is None:
                self.add_incoming_transfer(
                    "BT-0000501",
                    "900900111",
                    "Demo Producer (BioTrack)",
                    demo.BIOTRACK_LICENSE,
                    [
                        (barcode, name, "Usable", "Grams" if unit == "g" else "Each", qty)
                        for barcode, name, qty, unit in demo.BIOTRACK_INBOUND
                    ],
                    arrival=now + timedelta(hours=1),
                )

    def add_incoming_transfer(
        self,
        manifest: str,
        shipper_license: str,
        shipper_name: str,
        recipient_license: str,
        packages: list[tuple[str, str, str, str, float]],
        *,
        arrival: datetime,
    ) -> int:
        now = iso_z(utc_now())
        recipient = self.one("SELECT name FROM facilities WHERE license = ?", recipient_license)
        cur = self.db.execute(
            "INSERT INTO transfers (manifest_number, shipper_license, shipper_name, created_at, last_modified) "
            "VALUES (?, ?, ?, ?, ?)",
            (manifest, shipper_license, shipper_name, now, now),
        )
        transfer_id = int(cur.lastrowid or 0)
        cur = self.db.execute(
            "INSERT INTO deliveries (transfer_id, recipient_license, recipient_name, estimated_arrival) "
            "VALUES (?, ?, ?, ?)",
            (
                transfer_id,
                recipient_license,
                recipient["name"] if recipient else recipient_license,
                iso_z(arrival),
            ),
        )
        delivery_id = int(cur.lastrowid or 0)
        for label, name, category, unit, qty in packages:
            self.db.execute(
                "INSERT INTO delivery_packages (delivery_id, label, item_name, category, shipped_quantity, "
                "shipped_unit) VALUES (?, ?, ?, ?, ?, ?)",
                (delivery_id, label, name, category, qty, unit),
            )
        return transfer_id

    def dump(self) -> dict[str, Any]:
        """Everything, for tests and for a person looking at what the hub sent."""

        def rows(sql: str) -> list[dict[str, Any]]:
            return [dict(r) for r in self.db.execute(sql)]

        receipts = rows("SELECT * FROM receipts ORDER BY id")
        lines = rows("SELECT * FROM receipt_lines ORDER BY receipt_id, line")
        for receipt in receipts:
            receipt["lines"] = [line for line in lines if line["receipt_id"] == receipt["id"]]
        sales = rows("SELECT * FROM bt_sales ORDER BY transaction_id")
        for sale in sales:
            sale["items"] = json.loads(sale["items"])
            sale["refunded"] = json.loads(sale["refunded"])
        return {
            "facilities": rows("SELECT * FROM facilities ORDER BY license"),
            "packages": rows(
                "SELECT p.*, i.name AS item_name, i.category FROM packages p JOIN items i ON i.id = p.item_id "
                "ORDER BY p.label"
            ),
            "receipts": receipts,
            "adjustments": rows("SELECT * FROM adjustments ORDER BY id"),
            "transfers": rows("SELECT * FROM transfers ORDER BY id"),
            "deliveries": rows("SELECT * FROM deliveries ORDER BY id"),
            "delivery_packages": rows("SELECT * FROM delivery_packages ORDER BY id"),
            "patients": rows("SELECT * FROM patients ORDER BY patient_license"),
            "caregivers": rows("SELECT * FROM caregivers ORDER BY caregiver_license"),
            "biotrack_sales": sales,
            "counters": {r["name"]: r["value"] for r in self.db.execute("SELECT * FROM counters")},
        }
