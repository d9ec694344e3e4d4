"""The live catalogue: product edits, scheduled price changes and promotions changed from the back office
and applied without a restart, each change audited with who and why.

- ``promotions``: promotion id -> StoredPromotion. The first start seeds it from store.toml's
  ``[[promotions]]`` (or the demo's); from then on the back office owns the list (its order is the
  store's priority: promotions do not stack, ``hub.domain.promotions``).
- ``price_changes``: u64 micros(effective_at) NUL product id -> PriceChange; the scheduler applies each
  when its time comes (a change already due when it is made applies at once).

After every change the sale's search index and its price cache are refreshed and every register's
snapshot re-priced: the next scan sees the change.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec
import trio

from hub import audit
from hub.domain.catalog import Product
from hub.domain.limits.rules import KNOWN_CATEGORIES
from hub.domain.promotions import Promotion, problems
from hub.errors import BadRequest, NotFound
from hub.sale import inventory as inv
from hub.sale.context import ctx_of
from hub.store.env import decode, put, tget
from hub.store.keys import joined, micros, text, u64

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.sale.context import SaleContext

log = logging.getLogger("hub.catalogue")
SEEDED = b"promotions_seeded"


class StoredPromotion(msgspec.Struct, kw_only=True):
    promotion: Promotion
    position: int
    active: bool = True
    changed_at: datetime | None = None
    changed_by: str = ""
    reason: str = ""


class PriceChange(msgspec.Struct, kw_only=True):
    product_id: str
    price_cents: int
    effective_at: datetime  # UTC
    created_at: datetime
    created_by: str
    reason: str
    applied_at: datetime | None = None
    old_price_cents: int | None = None


# product fields the back office may change, and how each is checked
EDITABLE = {
    "name": str,
    "brand": str,
    "category": str,
    "price_cents": int,
    "tax_class": str,
    "thc_bp": int,
    "cbd_bp": int,
    "thc_mg_per_unit": int,
    "cbd_mg_per_unit": int,
    "image_url": str,
    "shelf_location": str,
    "coa_ref": str,
    "active": bool,
}


def edited_product(
    p: Product, changes: dict[str, Any], tax_classes: set[str]
) -> tuple[Product, dict[str, list[Any]]]:
    """The product with ``changes`` applied, and {field: [old, new]}; refuses what the store cannot sell."""
    diff: dict[str, list[Any]] = {}
    values: dict[str, Any] = {}
    for field, value in changes.items():
        kind = EDITABLE.get(field)
        if kind is None:
            raise BadRequest(f"{field} cannot be changed here.", field=field)
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadRequest(f"{field} is a whole number.", field=field)
        if kind is not int and not isinstance(value, kind):
            raise BadRequest(f"{field} must be a {kind.__name__}.", field=field)
        if kind is str:
            value = value.strip()
            if len(value) > 300:
                raise BadRequest(f"{field} is at most 300 characters.", field=field)
        if field == "name" and not value:
            raise BadRequest("A product needs a name.", field=field)
        if field == "price_cents" and not 0 <= value <= 10_000_000:
            raise BadRequest("The price is between $0.00 and $100,000.00.", field=field)
        if field in ("thc_bp", "cbd_bp") and not 0 <= value <= 10_000:
            raise BadRequest(f"{field} is basis points of weight, 0 to 10000.", field=field)
        if field in ("thc_mg_per_unit", "cbd_mg_per_unit") and not 0 <= value <= 1_000_000:
            raise BadRequest(f"{field} is milligrams, 0 to 1000000.", field=field)
        if field == "category" and value not in KNOWN_CATEGORIES:
            raise BadRequest(f"Unknown category {value!r}.", field=field)
        if field == "tax_class" and tax_classes and value not in tax_classes:
            raise BadRequest(
                f"Unknown tax class {value!r}; one of {', '.join(sorted(tax_classes))}.", field=field
            )
        if field == "image_url" and value and not value.startswith(("http://", "https://", "/")):
            raise BadRequest("The image is an http(s) URL or a path on the hub.", field=field)
        old = getattr(p, field)
        if old != value:
            diff[field] = [old, value]
            values[field] = value
    updated = msgspec.structs.replace(p, **values)
    if "category" in values:  # the limits count the product in its new category
        updated = msgspec.structs.replace(
            updated, limits=msgspec.structs.replace(p.limits, category=values["category"])
        )
    return updated, diff


class LiveCatalogue:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.promotions: tuple[Promotion, ...] = ()
        self._wake = trio.Event()
        self.imports: dict[str, dict[str, Any]] = {}

    @property
    def sale(self) -> SaleContext:
        return ctx_of(self.hub.services)

    def tax_classes(self) -> set[str]:
        out: set[str] = set()
        for rule in self.sale.settings.tax_table.rules:
            out.update(rule.applies_to)
        return out

    # ---- promotions ----
    def stored(self) -> list[StoredPromotion]:
        with self.hub.store.read() as txn:
            items = [decode(v, StoredPromotion) for _, v in txn.cursor(db=self.hub.store.db("promotions"))]
        return sorted(items, key=lambda s: (s.position, s.promotion.id))

    def reload(self) -> None:
        """Take the stored list as the live one, and re-price every register's cart with it."""
        self.promotions = tuple(s.promotion for s in self.stored() if s.active)
        self.sale.settings.promotions = self.promotions  # what the register prices with from now on
        self.refresh()

    def refresh(self) -> None:
        sale = self.sale
        sale.price_cache.clear()
        for actor in self.hub.registers.values():
            actor.publish()

    def seed(self, from_config: tuple[Promotion, ...]) -> None:
        store = self.hub.store
        now = datetime.now(UTC)
        with store.env.begin(write=True) as txn:
            if txn.get(SEEDED, db=store.db("meta")) is None:
                for i, p in enumerate(from_config):
                    put(
                        txn,
                        store,
                        "promotions",
                        text(p.id),
                        StoredPromotion(
                            promotion=p,
                            position=(i + 1) * 10,
                            changed_at=now,
                            changed_by="store.toml",
                            reason="first start",
                        ),
                    )
                txn.put(SEEDED, b"1", db=store.db("meta"))

    async def save_promotion(
        self, raw: dict[str, Any], *, active: bool, position: int | None, staff: str, reason: str
    ) -> StoredPromotion:
        try:
            promo = msgspec.convert(raw, Promotion)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"promotion: {exc}", field="promotion") from None
        wrong = problems(promo)
        if wrong:
            raise BadRequest("; ".join(wrong), field="promotion")
        store = self.hub.store
        now = datetime.now(UTC)

        def fn(txn: lmdb.Transaction) -> StoredPromotion:
            before = tget(txn, store, "promotions", text(promo.id), StoredPromotion)
            pos = (
                position
                if position is not None
                else (before.position if before else self._next_position(txn))
            )
            item = StoredPromotion(
                promotion=promo, position=pos, active=active, changed_at=now, changed_by=staff, reason=reason
            )
            put(txn, store, "promotions", text(promo.id), item)
            audit.append(
                txn,
                store,
                "promotion_created" if before is None else "promotion_changed",
                staff=staff,
                detail={
                    "promotion": promo.id,
                    "reason": reason,
                    "before": msgspec.to_builtins(before) if before else None,
                    "after": msgspec.to_builtins(item),
                },
            )
            return item

        item: StoredPromotion = await self.hub.writer.write(fn, label="promotion")
        self.reload()
        return item

    def _next_position(self, txn: lmdb.Transaction) -> int:
        top = 0
        for _, v in txn.cursor(db=self.hub.store.db("promotions")):
            top = max(top, decode(v, StoredPromotion).position)
        return top + 10

    async def delete_promotion(self, promo_id: str, *, staff: str, reason: str) -> None:
        store = self.hub.store

        def fn(txn: lmdb.Transaction) -> None:
            before = tget(txn, store, "promotions", text(promo_id), StoredPromotion)
            if before is None:
                raise NotFound("There is no such promotion.")
            txn.delete(text(promo_id), db=store.db("promotions"))
            audit.append(
                txn,
                store,
                "promotion_deleted",
                staff=staff,
                detail={"promotion": promo_id, "reason": reason, "before": msgspec.to_builtins(before)},
            )

        await self.hub.writer.write(fn, label="promotion")
        self.reload()

    def knows_code(self, code: str) -> bool:
        c = code.strip().upper()
        return any(p.code and p.code.strip().upper() == c for p in self.promotions)

    # ---- products ----
    async def edit_product(
        self, product_id: str, changes: dict[str, Any], *, staff: str, reason: str
    ) -> Product:
        store = self.hub.store
        tax_classes = self.tax_classes()

        def fn(txn: lmdb.Transaction) -> tuple[Product, dict[str, list[Any]]]:
            p = inv.product_in_txn(txn, store, product_id)
            if p is None:
                raise NotFound("There is no such product.")
            updated, diff = edited_product(p, changes, tax_classes)
            if diff:
                inv.put_product(txn, store, updated)
                audit.append(
                    txn,
                    store,
                    "product_changed",
                    staff=staff,
                    detail={"product": product_id, "changes": diff, "reason": reason},
                )
            return updated, diff

        updated, diff = await self.hub.writer.write(fn, label="product")
        if diff:
            self.sale.index.upsert(updated)
            self.refresh()
        return updated  # type: ignore[no-any-return]

    # ---- price changes ----
    async def schedule_price(
        self, product_id: str, price_cents: int, effective_at: datetime, *, staff: str, reason: str
    ) -> PriceChange:
        if not 0 <= price_cents <= 10_000_000:
            raise BadRequest("The price is between $0.00 and $100,000.00.", field="price_cents")
        if inv.product(self.hub.store, product_id) is None:
            raise NotFound("There is no such product.")
        store = self.hub.store
        now = datetime.now(UTC)
        change = PriceChange(
            product_id=product_id,
            price_cents=price_cents,
            effective_at=effective_at.astimezone(UTC),
            created_at=now,
            created_by=staff,
            reason=reason,
        )

        def fn(txn: lmdb.Transaction) -> None:
            put(txn, store, "price_changes", _pc_key(change), change)
            audit.append(
                txn,
                store,
                "price_change_scheduled",
                staff=staff,
                detail={
                    "product": product_id,
                    "price_cents": price_cents,
                    "effective_at": change.effective_at.isoformat(),
                    "reason": reason,
                },
            )

        await self.hub.writer.write(fn, label="price")
        self._wake.set()
        return change

    def price_changes(self, *, pending_only: bool = False) -> list[PriceChange]:
        with self.hub.store.read() as txn:
            out = [decode(v, PriceChange) for _, v in txn.cursor(db=self.hub.store.db("price_changes"))]
        return [c for c in out if not pending_only or c.applied_at is None]

    async def apply_due(self, now: datetime | None = None) -> list[PriceChange]:
        now = now or datetime.now(UTC)
        due = [c for c in self.price_changes(pending_only=True) if c.effective_at <= now]
        if not due:
            return []
        store = self.hub.store

        def fn(txn: lmdb.Transaction) -> list[tuple[PriceChange, Product]]:
            done: list[tuple[PriceChange, Product]] = []
            for c in sorted(due, key=lambda c: c.effective_at):
                current = tget(txn, store, "price_changes", _pc_key(c), PriceChange)
                p = inv.product_in_txn(txn, store, c.product_id)
                if current is None or current.applied_at is not None or p is None:
                    continue
                updated = msgspec.structs.replace(p, price_cents=c.price_cents)
                inv.put_product(txn, store, updated)
                applied = msgspec.structs.replace(current, applied_at=now, old_price_cents=p.price_cents)
                put(txn, store, "price_changes", _pc_key(c), applied)
                audit.append(
                    txn,
                    store,
                    "price_changed",
                    staff=c.created_by,
                    detail={
                        "product": c.product_id,
                        "changes": {"price_cents": [p.price_cents, c.price_cents]},
                        "reason": c.reason,
                        "scheduled_for": c.effective_at.isoformat(),
                    },
                )
                done.append((applied, updated))
            return done

        done = await self.hub.writer.write(fn, label="price")
        for _, product in done:
            self.sale.index.upsert(product)
        if done:
            self.refresh()
        return [c for c, _ in done]

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """Apply each scheduled price change when its time comes (checked at least every 30 s)."""
        task_status.started(self)
        while True:
            await self.apply_due()
            pending = [c.effective_at for c in self.price_changes(pending_only=True)]
            delay = 30.0
            if pending:
                delay = min(delay, max(0.0, (min(pending) - datetime.now(UTC)).total_seconds()))
            with trio.move_on_after(delay):
                await self._wake.wait()
            self._wake = trio.Event()


def _pc_key(c: PriceChange) -> bytes:
    return joined(u64(micros(c.effective_at)), text(c.product_id) + b"\x00" + u64(micros(c.created_at)))
