"""The online-order menu keeps no copy of the store: per package a digest and its product's number."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from hub.domain.catalog import Package, Product
from hub.orders.menu import Menu
from hub.sale import inventory
from hub.store.env import Store
from tests.domain.test_orders import pkg, product


def _held_values(obj: object) -> list[object]:
    """Every value the menu's tables hold, one level into their containers."""
    out: list[object] = []
    for value in vars(obj).values():
        out.append(value)
        if isinstance(value, dict):
            for v in value.values():
                out.append(v)
                if isinstance(v, dict):
                    out.extend(v.values())
        elif isinstance(value, list):
            out.extend(value)
    return out


async def test_the_menu_holds_digests_not_packages_and_follows_changes(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", map_size=32 << 20)
    today = date(2026, 6, 1)
    with store.env.begin(write=True) as txn:
        inventory.put_product(txn, store, product("EDI"))
        inventory.put_product(txn, store, product("PRE"))
        for i in range(200):
            inventory.put_package(txn, store, pkg(f"E{i:03d}", "EDI", 1, lab_testing="passed"))
        inventory.put_package(txn, store, pkg("P1", "PRE", 4, lab_testing="passed"))
    menu = Menu(boot="t")
    await menu.refresh(store, today)
    assert menu.items["EDI"]["available"] == 200 and menu.items["PRE"]["available"] == 4
    held = _held_values(menu.tables)
    assert not [v for v in held if isinstance(v, Package | Product | bytes | memoryview)]
    assert len(menu.tables.digests["packages"]) == 201
    assert all(isinstance(d, int) for d in menu.tables.digests["packages"].values())
    assert sorted(menu.tables.product_ids) == ["EDI", "PRE"]  # one number per product, not per package

    # a package moves to another product and one is removed: both products are recomputed
    version = menu.version
    with store.env.begin(write=True) as txn:
        inventory.put_package(txn, store, pkg("E000", "PRE", 1, lab_testing="passed"))
        txn.delete(b"E001", db=store.db("packages"))
    await menu.refresh(store, today)
    assert menu.items["EDI"]["available"] == 198 and menu.items["PRE"]["available"] == 5
    assert menu.version == version + 1
    store.close()
