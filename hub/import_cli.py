"""``storehub import``: load products and packages from CSV into a store.

    storehub import --data DIR [--create] [--update] [--products products.csv] [--packages packages.csv]

Column formats are documented in ``hub/domain/import_csv.py``. The first bad row stops the import with
an error naming its file, line and column, and nothing is written (one transaction for the whole import).
Products and packages already in the store are changed only with ``--update``; without it the import is
refused and lists what would change. Files must be UTF-8 ("CSV UTF-8").
Running it while the hub runs is safe (LMDB serialises writers across processes); the running hub picks
the new products up in its search index at its next start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hub import audit
from hub.cli import data_dir_of, open_store
from hub.domain.catalog import Package, Product
from hub.domain.import_csv import CsvRowError, changed_fields, decode_csv, iter_packages, iter_products
from hub.sale import inventory


def _progress(label: str, done: int, total: int) -> None:
    if not sys.stderr.isatty():  # a progress bar is for a person watching, not for a log
        return
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r{label:<9} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="storehub import", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="data directory of the store")
    parser.add_argument("--config", help="store.toml (for its data directory)")
    parser.add_argument("--create", action="store_true", help="make a new, empty store if there is none")
    parser.add_argument(
        "--update", action="store_true", help="change products and packages already in the store"
    )
    parser.add_argument("--products", type=Path)
    parser.add_argument("--packages", type=Path)
    args = parser.parse_args(argv)
    if not args.products and not args.packages:
        parser.error("give --products and/or --packages")

    data = data_dir_of(args)
    # read and check both files before the store is touched: a refused import writes nothing
    current = args.products
    try:
        products_text = _read(args.products) if args.products else ""
        current = args.packages
        packages_text = _read(args.packages) if args.packages else ""
    except CsvRowError as exc:
        print(f"storehub import: {current}: {exc} — nothing was imported", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"storehub import: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    store = open_store(data, create=args.create)
    try:
        products: dict[str, Product] = {p.id: p for p in inventory.all_products(store)}
        new_products: list[Product] = []
        current = args.products
        try:
            if args.products:
                total = max(products_text.count("\n") - 1, 1)
                for n, (_line, product) in enumerate(iter_products(products_text), 1):
                    new_products.append(product)
                    products[product.id] = product
                    if n % 200 == 0:
                        _progress("products", n, total)
                _progress("products", len(new_products), len(new_products))
            packages = []
            current = args.packages
            if args.packages:
                total = max(packages_text.count("\n") - 1, 1)
                for n, (_line, pkg) in enumerate(iter_packages(packages_text, products), 1):
                    packages.append(pkg)
                    if n % 200 == 0:
                        _progress("packages", n, total)
                _progress("packages", len(packages), len(packages))
        except CsvRowError as exc:
            print(f"\nstorehub import: {current}: {exc} — nothing was imported", file=sys.stderr)
            return 2
        with store.env.begin(write=True) as txn:
            changes = _changes(txn, store, new_products, packages)
            if changes and not args.update:
                txn.abort()
                for line in changes[:50]:
                    print(f"  {line}", file=sys.stderr)
                if len(changes) > 50:
                    print(f"  … and {len(changes) - 50} more", file=sys.stderr)
                print(
                    f"storehub import: {len(changes)} change(s) to what the store already holds (above); "
                    "give --update to apply them — nothing was imported",
                    file=sys.stderr,
                )
                return 2
            inventory.load_catalogue(txn, store, new_products, packages)
            audit.append(
                txn,
                store,
                "catalogue_imported",
                detail={"products": len(new_products), "packages": len(packages), "updated": len(changes)},
            )
        for line in changes:
            print(f"  updated {line}")
        print(f"imported {len(new_products)} products and {len(packages)} packages into {data}")
        return 0
    finally:
        store.close()


def _read(path: Path) -> str:
    with path.open("rb") as f:
        return decode_csv(f.read())


def _changes(txn: Any, store: Any, products: list[Product], packages: list[Package]) -> list[str]:
    """What the import would change of products and packages the store already holds (a re-import of
    the same tag must not silently reset a counted quantity: 10 -> 999)."""

    out = []
    for p in products:
        old = inventory.product_in_txn(txn, store, p.id)
        if old is not None:
            out += [f"product {p.id}: {c}" for c in changed_fields(old, p)]
    for k in packages:
        old_pkg = inventory.package_in_txn(txn, store, k.tag)
        if old_pkg is not None:
            out += [f"package {k.tag}: {c}" for c in changed_fields(old_pkg, k)]
    return out


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
