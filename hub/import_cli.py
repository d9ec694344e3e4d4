"""``storehub import``: load products and packages from CSV into a store.

    storehub import --data DIR [--products products.csv] [--packages packages.csv]

Column formats are documented in ``hub/domain/import_csv.py``. The first bad row stops the import with
an error naming its file, line and column, and nothing is written (one transaction for the whole import).
Running it while the hub runs is safe (LMDB serialises writers across processes); the running hub picks
the new products up in its search index at its next start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.domain.catalog import Product
from hub.domain.import_csv import CsvRowError, iter_packages, iter_products


def _progress(label: str, done: int, total: int) -> None:
    if not sys.stderr.isatty() and done != total:
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
    parser.add_argument("--products", type=Path)
    parser.add_argument("--packages", type=Path)
    args = parser.parse_args(argv)
    if not args.products and not args.packages:
        parser.error("give --products and/or --packages")
    from hub.cli import _data_dir
    from hub.sale import inventory
    from hub.store.env import Store

    data = _data_dir(args)
    store = Store(data)
    try:
        products: dict[str, Product] = {p.id: p for p in inventory.all_products(store)}
        new_products: list[Product] = []
        current = args.products
        try:
            if args.products:
                text = args.products.read_text(encoding="utf-8-sig")
                total = max(text.count("\n") - 1, 1)
                for n, (_line, product) in enumerate(iter_products(text), 1):
                    new_products.append(product)
                    products[product.id] = product
                    if n % 200 == 0:
                        _progress("products", n, total)
                _progress("products", len(new_products), len(new_products))
            packages = []
            current = args.packages
            if args.packages:
                text = args.packages.read_text(encoding="utf-8-sig")
                total = max(text.count("\n") - 1, 1)
                for n, (_line, pkg) in enumerate(iter_packages(text, products), 1):
                    packages.append(pkg)
                    if n % 200 == 0:
                        _progress("packages", n, total)
                _progress("packages", len(packages), len(packages))
        except CsvRowError as exc:
            print(f"\nstorehub import: {current}: {exc} — nothing was imported", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"storehub import: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 2
        from hub import audit

        with store.env.begin(write=True) as txn:
            inventory.load_catalogue(txn, store, new_products, packages)
            audit.append(
                txn,
                store,
                "catalogue_imported",
                detail={"products": len(new_products), "packages": len(packages)},
            )
        print(f"imported {len(new_products)} products and {len(packages)} packages into {data}")
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
