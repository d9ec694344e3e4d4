"""HQ's ingest and schema against a real PostgreSQL: migrations apply once; a batch applied twice (HQ died
after its commit, before its acks) changes nothing the second time; a void that arrives before its sale is
still a void; a message HQ cannot read is kept aside, not retried forever."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import psycopg

from hub.chain.events import ChainEvent
from hub.hq import reports
from hub.hq.ingest import Incoming, apply_batch
from hub.hq.migrate import migrate, migrations

CHAIN = "green"


def sale_event(store: str, seq: int, receipt: int, total: int) -> ChainEvent:
    at = datetime(2026, 3, 14, 18, 0, tzinfo=UTC)
    line = {
        "line_id": 1, "product_id": "PRE-001", "name": "Pre-roll", "category": "pre-roll", "sold_by": "each",
        "quantity": 1, "weight_mg": 0, "price_cents": total - 100, "total_cents": total,
    }  # fmt: skip
    receipt_doc = {
        "receipt_number": receipt, "register_id": "R1", "sold_at": at.isoformat(),
        "sold_at_local": "2026-03-14T11:00:00", "lines": [line], "subtotal_cents": total - 100,
        "discount_cents": 0, "pretax_cents": total - 100, "tax_cents": 100, "total_cents": total,
        "tendered_cents": total, "change_cents": 0,
    }  # fmt: skip
    return ChainEvent(
        store=store, seq=seq, at=at, action="sale", business_date="2026-03-14",
        detail={"receipt": receipt}, record={"receipt": receipt_doc, "customer_id": "c1"},
    )  # fmt: skip


def void_event(store: str, seq: int, receipt: int) -> ChainEvent:
    at = datetime(2026, 3, 14, 19, 0, tzinfo=UTC)
    return ChainEvent(
        store=store, seq=seq, at=at, action="void", business_date="2026-03-14", detail={"receipt": receipt},
        record={"receipt_number": receipt, "register_id": "R1", "voided_at": at.isoformat(), "manager_id": "maria", "reason": "x"},
    )  # fmt: skip


def msg(e: ChainEvent, n: int, subject_store: str | None = None) -> Incoming:
    return Incoming(
        subject=f"chain.{CHAIN}.{subject_store or e.store}.events", stream_seq=n, data=msgspec.json.encode(e)
    )


async def _conn(dsn: str) -> Any:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    assert await migrate(conn) == [name for _, name, _ in migrations()]
    assert await migrate(conn) == []  # applied once
    return conn


async def _applied_twice(pg_dsn: str) -> None:
    conn = await _conn(pg_dsn)
    try:
        batch = [msg(sale_event("north", 1, 101, 1500), 1), msg(sale_event("north", 2, 102, 2500), 2)]
        first = await apply_batch(conn, CHAIN, batch)
        assert first.new_events == {"north": 2} and first.duplicates == 0
        again = await apply_batch(conn, CHAIN, batch)  # redelivered after a crash between commit and ack
        assert again.new_events == {} and again.duplicates == 2
        # the same number with other content (a store restored from a backup sells on): set aside, not applied
        reused = msgspec.structs.replace(sale_event("north", 2, 999, 7700), hash="f" * 64)
        clash = await apply_batch(conn, CHAIN, [msg(reused, 3)])
        assert clash.rejects == 1 and clash.duplicates == 0 and clash.new_events == {}
        cur = await conn.execute("SELECT error FROM ingest_rejects")
        assert "north:2 differs" in (await cur.fetchone())[0]
        # the void (seq 4) arrives before the sale it voids (seq 3): order must not matter
        await apply_batch(conn, CHAIN, [msg(void_event("north", 4, 103), 4)])
        await apply_batch(conn, CHAIN, [msg(sale_event("north", 3, 103, 900), 3)])
        (z,) = await reports.z_reports(conn, date(2026, 3, 14))
        assert (z["sales_count"], z["total_cents"], z["voids_count"], z["voids_cents"]) == (2, 4000, 1, 900)
        (row,) = await reports.stores(conn)
        assert (row["max_seq"], row["events"], row["missing"]) == (4, 4, 0)
    finally:
        await conn.close()


async def _set_aside(pg_dsn: str) -> None:
    conn = await _conn(pg_dsn)
    try:
        forged = msg(
            sale_event("south", 1, 1, 100), 9, subject_store="north"
        )  # north's subject, south's name
        unreadable = Incoming(subject=f"chain.{CHAIN}.north.events", stream_seq=10, data=b"not json")
        result = await apply_batch(conn, CHAIN, [forged, unreadable])
        assert result.rejects == 2 and result.new_events == {}
        cur = await conn.execute("SELECT stream_seq FROM ingest_rejects ORDER BY 1")
        assert [r[0] for r in await cur.fetchall()] == [9, 10]
        cur = await conn.execute("SELECT count(*) FROM events")
        assert (await cur.fetchone())[0] == 0
    finally:
        await conn.close()


# psycopg's async API runs on asyncio (the tests run under trio by default): each test runs its own loop


def test_a_batch_applied_twice_counts_once_and_a_void_before_its_sale_still_voids(pg_dsn: str) -> None:
    asyncio.run(_applied_twice(pg_dsn))


def test_a_message_claiming_another_store_is_set_aside(pg_dsn: str) -> None:
    asyncio.run(_set_aside(pg_dsn))
