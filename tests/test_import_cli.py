"""`storehub import`: products and packages from CSV; a bad row names its line and imports nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hub.sale import inventory
from hub.store.env import Store

PRODUCTS = """sku,name,brand,category,sold_by,price,strain,thc_pct,net_weight_g,barcode
FLW-9,Test Kush 3.5g,Acme,flower,each,35.00,Test Kush,21.5,3.5,
BLK-9,Test Kush bulk,Acme,flower,weight,9.00,Test Kush,21.5,1,
"""
PACKAGES = """tag,sku,quantity,status,lab_testing,expires_on,received_at
1A4FF0100000022000000001,FLW-9,12,active,passed,2027-06-30,2026-10-01T09:00:00-07:00
1A4FF0100000022000000002,BLK-9,448,active,passed,2027-06-30,2026-10-02
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "import", *args], capture_output=True, text=True, timeout=60
    )


def test_import_products_and_packages(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(PRODUCTS)
    (tmp_path / "k.csv").write_text(PACKAGES)
    Store(tmp_path / "data").close()
    r = run(
        "--data",
        str(tmp_path / "data"),
        "--products",
        str(tmp_path / "p.csv"),
        "--packages",
        str(tmp_path / "k.csv"),
    )
    assert r.returncode == 0, r.stderr
    assert "imported 2 products and 2 packages" in r.stdout
    store = Store(tmp_path / "data")
    try:
        assert inventory.product(store, "FLW-9").price_cents == 3500  # type: ignore[union-attr]
        bulk = inventory.package(store, "1A4FF0100000022000000002")
        assert bulk is not None and bulk.quantity == 448_000  # grams in the file, mg in the store
        assert [p.tag for p in inventory.packages_of(store, "FLW-9")] == ["1A4FF0100000022000000001"]
    finally:
        store.close()


def test_bad_row_names_the_line_and_imports_nothing(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(PRODUCTS)
    (tmp_path / "k.csv").write_text(PACKAGES + "1A4FF0100000022000000003,NOPE-1,5,active,passed,,\n")
    Store(tmp_path / "data").close()
    r = run(
        "--data",
        str(tmp_path / "data"),
        "--products",
        str(tmp_path / "p.csv"),
        "--packages",
        str(tmp_path / "k.csv"),
    )
    assert r.returncode == 2
    assert "k.csv" in r.stderr and "line 4" in r.stderr and "nothing was imported" in r.stderr
    store = Store(tmp_path / "data")
    try:
        assert inventory.product(store, "FLW-9") is None
    finally:
        store.close()
