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


def _imported(data: Path) -> tuple[int, int]:
    store = Store(data)
    try:
        return store.count("products"), store.count("packages")
    finally:
        store.close()


def _refused(r: subprocess.CompletedProcess[str]) -> str:
    """Refused cleanly: exit code 2, one line, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_numbers_beyond_2_64_are_refused_naming_line_and_column(tmp_path: Path) -> None:
    Store(tmp_path / "data").close()
    (tmp_path / "p.csv").write_text(PRODUCTS)
    for column, row in (
        ("quantity", f"1A4FF0100000022000000003,FLW-9,{2**64},active,passed,,\n"),
        ("quantity", "1A4FF0100000022000000003,BLK-9,1e30,active,passed,,\n"),
    ):
        (tmp_path / "k.csv").write_text(PACKAGES + row)
        r = run(
            "--data",
            str(tmp_path / "data"),
            "--products",
            str(tmp_path / "p.csv"),
            "--packages",
            str(tmp_path / "k.csv"),
        )
        line = _refused(r)
        assert "line 4" in line and f"column {column}" in line and "too large" in line
    (tmp_path / "p.csv").write_text(PRODUCTS + f"FLW-8,Big,Acme,flower,each,{2**64},,,,\n")
    r = run("--data", str(tmp_path / "data"), "--products", str(tmp_path / "p.csv"))
    assert "column price" in _refused(r)
    assert _imported(tmp_path / "data") == (0, 0)


def test_latin1_and_utf16_files_are_refused(tmp_path: Path) -> None:
    Store(tmp_path / "data").close()
    latin = PRODUCTS.replace("Test Kush 3.5g", "Test Kush Crème 3.5g")
    (tmp_path / "latin1.csv").write_bytes(latin.encode("latin-1"))
    line = _refused(run("--data", str(tmp_path / "data"), "--products", str(tmp_path / "latin1.csv")))
    assert "latin1.csv" in line and "line 2" in line and "UTF-8" in line
    (tmp_path / "utf16.csv").write_bytes(PRODUCTS.encode("utf-16"))
    line = _refused(run("--data", str(tmp_path / "data"), "--products", str(tmp_path / "utf16.csv")))
    assert "UTF-16" in line and "utf16.csv" in line
    assert _imported(tmp_path / "data") == (0, 0)


def test_a_field_over_128_kib_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "data").close()
    big = "x" * (128 * 1024 + 1)
    (tmp_path / "p.csv").write_text(PRODUCTS + f'FLW-7,"{big}",Acme,flower,each,1.00,,,,\n')
    line = _refused(run("--data", str(tmp_path / "data"), "--products", str(tmp_path / "p.csv")))
    assert "line 4" in line and "128 KiB" in line
    assert _imported(tmp_path / "data") == (0, 0)


def test_reimport_of_an_existing_tag_needs_update_and_shows_the_change(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Store(data).close()
    (tmp_path / "p.csv").write_text(PRODUCTS)
    (tmp_path / "k.csv").write_text(PACKAGES)
    args = ("--data", str(data), "--products", str(tmp_path / "p.csv"), "--packages", str(tmp_path / "k.csv"))
    assert run(*args).returncode == 0
    assert run(*args).returncode == 0  # the same files again change nothing
    (tmp_path / "k.csv").write_text(PACKAGES.replace("FLW-9,12,", "FLW-9,999,"))
    r = run(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "package 1A4FF0100000022000000001: quantity: 12 -> 999" in r.stderr and "--update" in r.stderr
    store = Store(data)
    try:
        assert inventory.package(store, "1A4FF0100000022000000001").quantity == 12  # type: ignore[union-attr]
    finally:
        store.close()
    r = run(*args, "--update")
    assert r.returncode == 0, r.stderr
    assert "quantity: 12 -> 999" in r.stdout
    store = Store(data)
    try:
        assert inventory.package(store, "1A4FF0100000022000000001").quantity == 999  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_path_without_a_store_asks_for_create(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(PRODUCTS)
    typo = tmp_path / "dta"
    line = _refused(run("--data", str(typo), "--products", str(tmp_path / "p.csv")))
    assert "no store at" in line and "--create" in line
    assert not typo.exists()
    for cmd in (
        [
            "staff",
            "add",
            "--data",
            str(typo),
            "--id",
            "x",
            "--name",
            "X",
            "--role",
            "manager",
            "--pin",
            "9876",
        ],
        ["pairing-code", "--data", str(typo), "--register", "R1"],
        ["backup", str(tmp_path / "bk"), "--data", str(typo)],
        ["audit", "verify", "--data", str(typo)],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "hub.cli", *cmd], capture_output=True, text=True, timeout=60
        )
        assert "no store at" in _refused(r), cmd
        assert not typo.exists(), cmd
    r = run("--data", str(typo), "--create", "--products", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r.stderr
    assert _imported(typo) == (2, 0)
