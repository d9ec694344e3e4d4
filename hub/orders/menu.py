"""The live menu for e-commerce channels: every product with price, category, potency, lab status and the
quantity it may be sold in: on hand − reserved for orders − unsellable (quarantine, hold, lab, expired).

Rebuilt only when the store changed (LMDB's last transaction id), off the trio thread, and incrementally:
each pass walks the products, packages and reservations tables comparing the stored bytes with the last
pass, decodes only what changed and recomputes only the products it touches (a new day recomputes all,
since packages expire). A product whose entry changed gets the new menu version, so ``?since=<version>``
answers only the changes; the full answer is encoded once per version.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import msgspec
import trio

from hub.domain.catalog import LAB_SELLABLE, Package, Product
from hub.domain.orders import ProductReservations, free_quantity
from hub.store.env import Store, decode


def entry(
    p: Product, packages: list[Package], reservations: ProductReservations | None, today: date
) -> dict[str, Any]:
    labs = {pk.lab_testing for pk in packages if pk.quantity > 0 and pk.status == "active"}
    return {
        "id": p.id,
        "name": p.name,
        "brand": p.brand,
        "category": p.category,
        "strain": p.strain,
        "strain_type": p.strain_type,
        "sold_by": p.sold_by,
        "price_cents": p.price_cents,
        "thc_bp": p.thc_bp,
        "cbd_bp": p.cbd_bp,
        "thc_mg_per_unit": p.thc_mg_per_unit,
        "lab_status": "passed" if labs & LAB_SELLABLE else ("pending" if labs else "none"),
        "available": free_quantity(p, packages, reservations, today),  # units, or mg by weight
    }


@dataclass
class MenuTables:
    """The last pass's view of the three tables, kept to tell what changed."""

    raw: dict[str, dict[bytes, bytes]] = field(
        default_factory=lambda: {"products": {}, "packages": {}, "order_reservations": {}}
    )
    products: dict[str, Product] = field(default_factory=dict)
    packages: dict[str, dict[str, Package]] = field(default_factory=dict)  # product id -> tag -> package
    package_product: dict[str, str] = field(default_factory=dict)
    reservations: dict[str, ProductReservations] = field(default_factory=dict)
    today: date | None = None

    def update(self, store: Store, today: date) -> tuple[int, set[str]]:
        """Walk the tables; returns (the transaction id read, product ids to recompute)."""
        dirty: set[str] = set()
        with store.env.begin(buffers=True) as txn:
            txnid = int(txn.id())
            for table in ("products", "packages", "order_reservations"):
                old = self.raw[table]
                new: dict[bytes, bytes] = {}
                for k, v in txn.cursor(db=store.db(table)):
                    key = bytes(k)
                    prev = old.get(key)
                    if prev is not None and prev == v:
                        new[key] = prev
                        continue
                    new[key] = raw = bytes(v)
                    self._changed(table, key.decode(), raw, dirty)
                for key in old.keys() - new.keys():
                    self._gone(table, key.decode(), dirty)
                self.raw[table] = new
        if today != self.today:
            self.today = today
            dirty |= set(self.products)
        return txnid, dirty

    def _changed(self, table: str, key: str, raw: bytes, dirty: set[str]) -> None:
        if table == "products":
            self.products[key] = decode(raw, Product)
            dirty.add(key)
        elif table == "packages":
            pkg = decode(raw, Package)
            was = self.package_product.get(key)
            if was is not None and was != pkg.product_id:
                self.packages.get(was, {}).pop(key, None)
                dirty.add(was)
            self.package_product[key] = pkg.product_id
            self.packages.setdefault(pkg.product_id, {})[key] = pkg
            dirty.add(pkg.product_id)
        else:
            self.reservations[key] = decode(raw, ProductReservations)
            dirty.add(key)

    def _gone(self, table: str, key: str, dirty: set[str]) -> None:
        if table == "products":
            self.products.pop(key, None)
        elif table == "packages":
            pid = self.package_product.pop(key, "")
            self.packages.get(pid, {}).pop(key, None)
            key = pid
        else:
            self.reservations.pop(key, None)
        dirty.add(key)

    def entries(self, dirty: set[str]) -> dict[str, dict[str, Any] | None]:
        assert self.today is not None
        out: dict[str, dict[str, Any] | None] = {}
        for pid in dirty:
            p = self.products.get(pid)
            out[pid] = (
                None
                if p is None or not p.active
                else entry(
                    p, list(self.packages.get(pid, {}).values()), self.reservations.get(pid), self.today
                )
            )
        return out


@dataclass
class Menu:
    boot: str
    version: int = 0
    txnid: int = -1
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed_at: dict[str, int] = field(default_factory=dict)
    tables: MenuTables = field(default_factory=MenuTables)
    lock: trio.Lock = field(default_factory=trio.Lock)
    _full: tuple[int, bytes, bytes] = (-1, b"", b"")

    @property
    def etag(self) -> str:
        return f'"menu-{self.boot}-{self.version}"'

    async def refresh(self, store: Store, today: date) -> None:
        async with self.lock:
            # nothing written and the same day: the menu stands (a new day expires packages by itself)
            if int(store.env.info()["last_txnid"]) == self.txnid and today == self.tables.today:
                return

            def work() -> tuple[int, dict[str, dict[str, Any] | None]]:
                txnid, dirty = self.tables.update(store, today)
                return txnid, self.tables.entries(dirty)

            txnid, fresh = await trio.to_thread.run_sync(work)
            changed = [pid for pid, it in fresh.items() if self.items.get(pid) != it]
            if changed or self.txnid < 0:
                self.version += 1
                for pid in changed:
                    self.changed_at[pid] = self.version
                    it = fresh[pid]
                    if it is None:
                        self.items.pop(pid, None)
                    else:
                        self.items[pid] = it
            self.txnid = txnid

    def answer(self, since: str = "", *, gzipped: bool = False) -> tuple[bytes, bool]:
        """The JSON body (and whether it is gzip-compressed: the full menu is, once per version, when the
        channel accepts it; a large menu is mostly transfer time)."""
        base = 0
        if since.startswith(self.boot + "."):
            try:
                base = int(since.split(".", 1)[1])
            except ValueError:
                base = 0
        version = f"{self.boot}.{self.version}"
        if base <= 0 or base > self.version:
            if self._full[0] != self.version:
                offered = [it for it in self.items.values() if it["available"] > 0]
                body = msgspec.json.encode({"version": version, "full": True, "products": offered})
                self._full = (self.version, body, gzip.compress(body, compresslevel=5))
            return (self._full[2], True) if gzipped else (self._full[1], False)
        changed = [
            self.items.get(pid) or {"id": pid, "available": 0, "removed": True}
            for pid, at in self.changed_at.items()
            if at > base
        ]
        return msgspec.json.encode({"version": version, "full": False, "products": changed}), False
