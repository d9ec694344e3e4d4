"""The live menu for e-commerce channels: every product with price, category, potency, lab status and the
quantity it may be sold in: on hand − reserved for orders − unsellable (quarantine, hold, lab, expired).

Built in one read transaction over whole tables (a scan, not a lookup per product), off the trio thread,
and only when the store changed (LMDB's last transaction id). Each build is compared with the previous one;
a product whose entry changed gets the new menu version, so ``?since=<version>`` answers only the changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import trio

from hub.domain.catalog import LAB_SELLABLE, Package, Product
from hub.domain.orders import ProductReservations, free_quantity
from hub.store.env import Store, decode


def build(store: Store, today: date) -> tuple[int, dict[str, dict[str, Any]]]:
    """(the store's transaction id the menu reflects, product id -> menu entry)."""
    with store.env.begin(buffers=True) as txn:
        txnid = int(txn.id())
        products = {bytes(k).decode(): decode(v, Product) for k, v in txn.cursor(db=store.db("products"))}
        packages: dict[str, list[Package]] = {}
        for _, v in txn.cursor(db=store.db("packages")):
            pkg = decode(v, Package)
            packages.setdefault(pkg.product_id, []).append(pkg)
        reservations = {
            bytes(k).decode(): decode(v, ProductReservations)
            for k, v in txn.cursor(db=store.db("order_reservations"))
        }
    out: dict[str, dict[str, Any]] = {}
    for pid, p in products.items():
        if not p.active:
            continue
        pkgs = packages.get(pid, [])
        free = free_quantity(p, pkgs, reservations.get(pid), today)
        labs = {pk.lab_testing for pk in pkgs if pk.quantity > 0 and pk.status == "active"}
        out[pid] = {
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
            "available": free,  # units, or mg for products sold by weight
        }
    return txnid, out


@dataclass
class Menu:
    boot: str
    version: int = 0
    txnid: int = -1
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed_at: dict[str, int] = field(default_factory=dict)
    lock: trio.Lock = field(default_factory=trio.Lock)

    @property
    def etag(self) -> str:
        return f'"menu-{self.boot}-{self.version}"'

    async def refresh(self, store: Store, today: date) -> None:
        async with self.lock:
            if int(store.env.info()["last_txnid"]) == self.txnid:
                return
            txnid, items = await trio.to_thread.run_sync(build, store, today)
            changed = [pid for pid, it in items.items() if self.items.get(pid) != it]
            gone = [pid for pid in self.items if pid not in items]
            if changed or gone or self.txnid < 0:
                self.version += 1
                for pid in changed:
                    self.changed_at[pid] = self.version
                for pid in gone:
                    self.changed_at[pid] = self.version
            self.items, self.txnid = items, txnid

    def answer(self, since: str = "") -> dict[str, Any]:
        base = 0
        if since.startswith(self.boot + "."):
            try:
                base = int(since.split(".", 1)[1])
            except ValueError:
                base = 0
        if base <= 0 or base > self.version:
            offered = [it for it in self.items.values() if it["available"] > 0]
            return {"version": f"{self.boot}.{self.version}", "full": True, "products": offered}
        changed = []
        for pid, at in self.changed_at.items():
            if at > base:
                changed.append(self.items.get(pid) or {"id": pid, "available": 0, "removed": True})
        return {"version": f"{self.boot}.{self.version}", "full": False, "products": changed}
