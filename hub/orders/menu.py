"""The live menu for e-commerce channels: every product with price, category, potency, lab status and the
quantity it may be sold in: on hand − reserved for orders − unsellable (quarantine, hold, lab, expired).

Rebuilt only when the store changed (LMDB's last transaction id), off the trio thread, and incrementally:
each pass walks the products, packages and reservations tables comparing each stored value's digest with
the last pass's, decodes only what changed and recomputes only the products it touches, from the store (a new day recomputes all,
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
from hub.orders import store as ostore
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


_NUMBER_BITS = 24  # a package's digest keeps its product's number in its low bits (16M products)
_NUMBER_MASK = (1 << _NUMBER_BITS) - 1
_DIGEST_MASK = (1 << 40) - 1


def _digest(value: Any) -> int:
    """A stored value's fingerprint (this process only): enough to tell that it changed."""
    return hash(bytes(value)) & _DIGEST_MASK


@dataclass
class MenuTables:
    """What the last pass saw of the three tables, kept to tell what changed: per key (its hash) only a
    digest of the stored value, with the number of the product it belongs to in the low bits; never a
    copy of the value. A changed product's entry is recomputed from the store (its packages through
    ``packages_by_product``), so the hub holds no second copy of 100k packages."""

    digests: dict[str, dict[int, int]] = field(
        default_factory=lambda: {"products": {}, "packages": {}, "order_reservations": {}}
    )
    product_ids: list[str] = field(default_factory=list)  # product number -> product id
    product_number: dict[str, int] = field(default_factory=dict)
    today: date | None = None

    def _number(self, product_id: str) -> int:
        n = self.product_number.get(product_id)
        if n is None:
            n = self.product_number[product_id] = len(self.product_ids)
            self.product_ids.append(product_id)
        return n

    def update(self, store: Store, today: date) -> tuple[int, dict[str, dict[str, Any] | None]]:
        """Walk the tables; returns (the transaction id read, the recomputed entries of the products
        that changed: None for a product gone or inactive). The digests are updated in place (no second
        table while walking); a table with fewer keys than seen is walked again for the ones gone."""
        dirty: set[str] = set()
        with store.env.begin(buffers=True) as txn:
            txnid = int(txn.id())
            for table in ("products", "packages", "order_reservations"):
                seen = self.digests[table]
                count = 0
                for k, v in txn.cursor(db=store.db(table)):
                    count += 1
                    h, d = hash(bytes(k)), _digest(v)
                    was = seen.get(h)
                    if was is not None and was >> _NUMBER_BITS == d:
                        continue
                    # a package belongs to its product; a product and its reservations are keyed by its id
                    pid = decode(bytes(v), Package).product_id if table == "packages" else bytes(k).decode()
                    if was is not None:
                        dirty.add(self.product_ids[was & _NUMBER_MASK])
                    seen[h] = d << _NUMBER_BITS | self._number(pid)
                    dirty.add(pid)
                if count != len(seen):
                    self._gone(txn, store, table, dirty)
            if today != self.today:
                self.today = today
                dirty |= set(self.product_number)
            return txnid, self.entries(txn, store, dirty)

    def _gone(self, txn: Any, store: Store, table: str, dirty: set[str]) -> None:
        seen = self.digests[table]
        present = {hash(bytes(k)) for k in txn.cursor(db=store.db(table)).iternext(values=False)}
        for h in seen.keys() - present:
            dirty.add(self.product_ids[seen.pop(h) & _NUMBER_MASK])

    def entries(self, txn: Any, store: Store, dirty: set[str]) -> dict[str, dict[str, Any] | None]:
        assert self.today is not None
        out: dict[str, dict[str, Any] | None] = {}
        for pid in dirty:
            p = ostore.inv_product(txn, store, pid)
            out[pid] = (
                None
                if p is None or not p.active
                else entry(
                    p,
                    # the index may still name a package since moved to another product
                    [pk for pk in ostore.packages_in_txn(txn, store, pid) if pk.product_id == pid],
                    ostore.reservations_in_txn(txn, store, pid),
                    self.today,
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

            txnid, fresh = await trio.to_thread.run_sync(self.tables.update, store, today)
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
