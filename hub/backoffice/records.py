"""Reading the day's records out of the store: sales, voids, returns, drawers, incidents, counts, flags.

Plain functions over a :class:`hub.store.env.Store`, so the running hub and ``storehub report`` (which opens
the store read-only from a second process) read the same way. Each function copies what it needs out of one
short read transaction and never holds it across an ``await``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import lmdb
import msgspec

from hub.domain.drawer import DrawerSession
from hub.domain.eod import DayReports, build_day_reports
from hub.domain.receipt import ReturnedStock, ReturnRecord, SaleRecord, VoidRecord
from hub.store.env import Store, decode
from hub.store.keys import u64
from hub.store.layout import RETURNED_STOCK, RETURNS, RETURNS_BY_RECEIPT, VOIDS

T = TypeVar("T")


def _has(store: Store, table: str) -> bool:
    return table in store.tables


def scan_prefix(
    txn: lmdb.Transaction, store: Store, table: str, prefix: bytes
) -> Iterator[tuple[bytes, bytes]]:
    with txn.cursor(db=store.db(table)) as cur:
        if not cur.set_range(prefix):
            return
        for k, v in cur:
            kb = bytes(k)
            if not kb.startswith(prefix):
                return
            yield kb, bytes(v)


def all_of(store: Store, table: str, type_: type[T], prefix: bytes = b"") -> list[T]:
    if not _has(store, table):
        return []
    with store.read() as txn:
        return [decode(v, type_) for _, v in scan_prefix(txn, store, table, prefix)]


def sales_on(store: Store, day: date) -> list[SaleRecord]:
    """Sales committed on a store-local date (the ``sales_by_day`` index is keyed by that date)."""
    if not _has(store, "sales_by_day"):
        return []
    prefix = day.isoformat().encode() + b"\x00"
    out: list[SaleRecord] = []
    with store.read() as txn:
        sales = store.db("sales")
        for k, _ in scan_prefix(txn, store, "sales_by_day", prefix):
            raw = txn.get(k[len(prefix) :], db=sales)
            if raw is not None:
                out.append(decode(raw, SaleRecord))
    return out


def sales_since(store: Store, since: datetime, zone: ZoneInfo) -> list[SaleRecord]:
    """Every sale at or after ``since`` (UTC), through the per-day index."""
    out: list[SaleRecord] = []
    day = since.astimezone(zone).date()
    today = datetime.now(zone).date()
    while day <= today:
        out.extend(s for s in sales_on(store, day) if s.receipt.sold_at >= since)
        day += timedelta(days=1)
    return out


def voids(store: Store) -> list[VoidRecord]:
    return VOIDS.all(store)


def returns(store: Store) -> list[ReturnRecord]:
    return RETURNS.all(store)


def returns_of(store: Store, receipt_number: int) -> list[ReturnRecord]:
    with store.read() as txn:
        found = (
            RETURNS.get(txn, store, n) for (_, n) in RETURNS_BY_RECEIPT.keys(txn, store, (receipt_number,))
        )
        return [r for r in found if r is not None]


def returned_stock(store: Store) -> list[ReturnedStock]:
    return RETURNED_STOCK.all(store)


def drawers(store: Store) -> list[DrawerSession]:
    return all_of(store, "drawers", DrawerSession)


def day_reports(store: Store, day: date, timezone: str, *, now: datetime) -> DayReports:
    """The Z reports (store and each register) for a store-local date."""
    # voids and returns of the day may concern sales of earlier days; the builder filters by date
    return build_day_reports(
        day,
        timezone,
        sales=sales_on(store, day),
        voids=voids(store),
        returns=returns(store),
        drawers=drawers(store),
        generated_at=now,
    )


class VariancePoint(msgspec.Struct, frozen=True, kw_only=True):
    day: date
    variance_cents: int
    drawers: int


def variance_by_day(store: Store, zone: ZoneInfo, *, today: date, days: int = 30) -> list[VariancePoint]:
    """Σ drawer variances per store-local day (counted drawers only), oldest first, every day present."""
    first = today - timedelta(days=days - 1)
    acc: dict[date, list[int]] = {first + timedelta(days=i): [0, 0] for i in range(days)}
    for d in drawers(store):
        v = d.variance_cents
        if v is None:
            continue
        day = d.opening.at.astimezone(zone).date()
        if day in acc:
            acc[day][0] += v
            acc[day][1] += 1
    return [VariancePoint(day=k, variance_cents=v[0], drawers=v[1]) for k, v in sorted(acc.items())]


def incidents(store: Store) -> list[dict[str, Any]]:
    """Incidents as plain dicts (the Incident Struct lives with the register actor)."""
    if not _has(store, "incidents"):
        return []
    with store.read() as txn:
        rows = [msgspec.msgpack.decode(v) for _, v in scan_prefix(txn, store, "incidents", b"")]
    return [r for r in rows if isinstance(r, dict)]


def audit_page(store: Store, *, before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest audit entries (or those before ``before``), newest first, as plain dicts."""
    out: list[dict[str, Any]] = []
    with store.read() as txn, txn.cursor(db=store.db("audit")) as cur:
        found = cur.set_range(u64(before)) if before is not None else cur.last()
        if before is not None:
            found = cur.prev() if found else cur.last()
        while found and len(out) < limit:
            out.append(msgspec.msgpack.decode(bytes(cur.value())))
            found = cur.prev()
    return out
