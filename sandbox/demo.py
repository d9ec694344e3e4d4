"""The demo world the sandbox seeds with ``--seed demo``: one retail facility, its catalogue, an incoming
transfer and registered patients, plus the credentials the demo hub uses. Kept in one place so
``storehub demo``, the tests and the sandbox agree.

Labels follow Metrc's 24-character form (``1A4`` + 21 hex digits); BioTrack barcodes are 16 digits.
"""

from __future__ import annotations

# Metrc v2: HTTP Basic, vendor (integrator) key as user name, user key as password.
METRC_VENDOR_KEY = "demo-vendor-key-0001"
METRC_USER_KEY = "demo-user-key-0001"
METRC_USER_NAME = "demo.budtender"
# A second person's key, so per-employee keys can be exercised.
METRC_MANAGER_KEY = "demo-user-key-0002"
METRC_MANAGER_NAME = "demo.manager"
# The demo store's own facility: a California retailer (DCC licence form ``C10-nnnnnnn-LIC``), in the store's
# state and time zone, since Metrc writes SalesDateTime in the facility's local time. It must agree with
# ``hub.demo.DEMO_TOML`` ([store] licence, jurisdiction, time_zone); the hub refuses to start otherwise.
METRC_LICENSE = "C10-0000001-LIC"
METRC_FACILITY_NAME = "Green Counter Demo Dispensary (Retail)"
METRC_STATE = "CA"
METRC_TIME_ZONE = "America/Los_Angeles"
# A cultivator that ships to the demo store (DCC cultivation licence form).
SHIPPER_LICENSE = "CCL21-0000801"
SHIPPER_NAME = "Demo Cultivation LLC"

# BioTrack 2014 JSON-RPC and 2022/2024 REST.
BIOTRACK_LICENSE = "900900900"
BIOTRACK_UBI = "603123456"
BIOTRACK_USERNAME = "demo@storehub.example"
BIOTRACK_PASSWORD = "demo-password"
BIOTRACK_TIME_ZONE = "America/Denver"

# (label, item name, category, unit of measure, quantity, price cents) — price is for the demo catalogue.
METRC_PACKAGES: list[tuple[str, str, str, str, float, int]] = [
    ("1A4FF0300000387000000101", "Blue Dream 3.5g", "Buds", "Each", 40, 3500),
    ("1A4FF0300000387000000102", "Sour Diesel 1g Pre-Roll", "Pre-Roll Flower", "Each", 100, 1200),
    ("1A4FF0300000387000000103", "Bulk OG Kush", "Buds", "Grams", 453.592, 1000),
    ("1A4FF0300000387000000104", "Live Resin Cart 0.5g", "Vape Cartridge", "Each", 30, 4500),
    ("1A4FF0300000387000000105", "Gummies 10x10mg", "Edible", "Each", 60, 2000),
    ("1A4FF0300000387000000106", "Tincture 30ml", "Tincture", "Each", 12, 5500),
    ("1A4FF0300000387000000107", "Wax 1g", "Concentrate", "Grams", 28.0, 4000),
    ("1A4FF0300000387000000108", "Bulk Gelato", "Buds", "Grams", 226.796, 1200),
]

# The incoming manifest: (label, item name, category, unit, shipped quantity).
INCOMING_MANIFEST_NUMBER = "0000123401"
INCOMING_PACKAGES: list[tuple[str, str, str, str, float]] = [
    ("1A4FF0300000387000000201", "Blue Dream 3.5g", "Buds", "Each", 50),
    ("1A4FF0300000387000000202", "Bulk Gelato", "Buds", "Grams", 453.592),
    ("1A4FF0300000387000000203", "Gummies 10x10mg", "Edible", "Each", 24),
]

# (patient licence, active, flower oz available, THC oz available, purchase amount days)
PATIENTS: list[tuple[str, bool, float, float, float]] = [
    ("PTN-000101", True, 2.0, 0.28, 30.0),
    ("PTN-000102", True, 0.5, 0.1, 30.0),
    ("PTN-000103", False, 0.0, 0.0, 30.0),
]
CAREGIVERS: list[tuple[str, bool]] = [("CGN-000201", True), ("CGN-000202", False)]

# BioTrack inventory: (barcode, product name, quantity, unit "g" or "ea")
BIOTRACK_INVENTORY: list[tuple[str, str, float, str]] = [
    ("6647128000000101", "Blue Dream 3.5g", 40, "ea"),
    ("6647128000000102", "Bulk OG Kush", 453.592, "g"),
    ("6647128000000103", "Gummies 10x10mg", 60, "ea"),
]
# BioTrack medical cards: (card id, card key, active, remaining limit in grams)
BIOTRACK_CARDS: list[tuple[str, str, bool, float]] = [
    ("NM-0000101", "key-101", True, 230.0),
    ("NM-0000102", "key-102", False, 0.0),
]
BIOTRACK_INBOUND: list[tuple[str, str, float, str]] = [
    ("6647128000000201", "Bulk Gelato", 226.796, "g"),
    ("6647128000000202", "Gummies 10x10mg", 24, "ea"),
]
