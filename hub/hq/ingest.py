"""Applying store events to PostgreSQL: each fetched batch in ONE transaction, acknowledged after commit.

Exactly once: an event's row is keyed by (store, sequence); a redelivered event (HQ died after its commit
and before its ack, or JetStream resent it) conflicts with its row and projects nothing. The projections
are order-independent (a void may arrive before its sale after a redelivery: reports join the two), so
redelivery order does not matter either.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import msgspec

from hub.chain import names
from hub.chain.events import ChainEvent, StoreStatus


class Incoming(msgspec.Struct, kw_only=True):
    subject: str
    stream_seq: int
    data: bytes


class BatchResult(msgspec.Struct, kw_only=True):
    new_events: dict[str, int]  # store -> events applied now
    duplicates: int
    rejects: int
    lag_seconds: dict[str, float]  # store -> ingest time minus commit time of its newest event in the batch


_EVENT_COLUMNS = "store_id, seq, action, at, business_date, staff, register, detail, record, hash, prev_hash"
_dec_event = msgspec.json.Decoder(ChainEvent)
_staged: weakref.WeakSet[Any] = weakref.WeakSet()  # connections that have the staging table
_staged_tables: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_dec_status = msgspec.json.Decoder(StoreStatus)
_jsonb = msgspec.json.Encoder()


def _j(value: Any) -> str:
    return _jsonb.encode(value).decode()


def _local_date(at_local: str) -> str:
    return at_local[:10]


async def apply_batch(conn: Any, chain: str, batch: list[Incoming]) -> BatchResult:
    """Decode and apply ``batch`` in one transaction on ``conn`` (psycopg AsyncConnection)."""
    events: list[ChainEvent] = []
    statuses: list[StoreStatus] = []
    rejects: list[tuple[Incoming, str]] = []
    for m in batch:
        try:
            c, store, kind = names.parse_subject(m.subject)
            if c != chain:
                raise ValueError(f"subject of another chain ({c})")
            if kind == "events":
                e = _dec_event.decode(m.data)
                if e.store != store:  # the subject is what NATS permissions vouch for, not the payload
                    raise ValueError(f"event claims store {e.store!r} on {store!r}'s subject")
                events.append(e)
            elif kind == "status":
                st = _dec_status.decode(m.data)
                if st.store != store:
                    raise ValueError(f"status claims store {st.store!r} on {store!r}'s subject")
                statuses.append(st)
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except (ValueError, msgspec.DecodeError) as exc:
            rejects.append((m, str(exc)))
    now = datetime.now(UTC)
    new_by_store: dict[str, int] = defaultdict(int)
    lag: dict[str, float] = {}
    conflicts: list[tuple[ChainEvent, str]] = []
    async with conn.transaction():
        fresh: list[ChainEvent] = []
        if events:
            # COPY into a per-transaction staging table, then one INSERT that skips what HQ already has
            if conn not in _staged:
                await conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS incoming_events (LIKE events INCLUDING DEFAULTS)"
                    " ON COMMIT DELETE ROWS"
                )
                _staged.add(conn)
            async with conn.cursor() as cur:
                async with cur.copy(f"COPY incoming_events ({_EVENT_COLUMNS}) FROM STDIN") as copy:
                    for e in events:
                        await copy.write_row(
                            (
                                e.store, e.seq, e.action, e.at, e.business_date, e.staff, e.register,
                                _j(e.detail), None if e.record is None else _j(e.record), e.hash, e.prev_hash,
                            )
                        )  # fmt: skip
                await cur.execute(
                    f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM incoming_events ORDER BY store_id, seq"
                    " ON CONFLICT (store_id, seq) DO NOTHING RETURNING store_id, seq"
                )
                inserted = {(r[0], r[1]) for r in await cur.fetchall()}
            fresh = [e for e in events if (e.store, e.seq) in inserted]
            again = [e for e in events if (e.store, e.seq) not in inserted]
            if again:  # a resend must be the same event: a reused sequence number is set aside, not lost
                cur = await conn.execute(
                    "SELECT e.store_id, e.seq, e.hash FROM events e JOIN unnest(%s::text[], %s::bigint[])"
                    " AS k(store_id, seq) USING (store_id, seq)",
                    ([e.store for e in again], [e.seq for e in again]),
                )
                held = {(r[0], r[1]): r[2] for r in await cur.fetchall()}
                by_key = {(e.store, e.seq): e for e in again}
                for key, h in held.items():
                    if h != by_key[key].hash:
                        e = by_key[key]
                        conflicts.append((e, f"event {e.store}:{e.seq} differs from the one HQ holds"))
        versions = await _project(conn, fresh)
        for e in fresh:
            new_by_store[e.store] += 1
        newest: dict[str, ChainEvent] = {}
        for e in fresh:
            if e.store not in newest or e.seq > newest[e.store].seq:
                newest[e.store] = e
        for store, e in newest.items():
            lag[store] = max(0.0, (now - e.at).total_seconds())
        # last, just before the commit: the stores' summary rows, locked all at once in a fixed order, so two
        # batches applied side by side overlap in the heavy part above and never deadlock here
        touched = sorted(set(newest) | {st.store for st in statuses} | {store for store, _ in versions})
        if touched:
            await conn.execute(
                "INSERT INTO stores (store_id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (touched,)
            )
            await conn.execute(
                "SELECT 1 FROM stores WHERE store_id = ANY(%s) ORDER BY store_id FOR UPDATE", (touched,)
            )
        if newest:  # one statement for every store in the batch
            ordered = sorted(newest)
            await conn.execute(
                "INSERT INTO stores (store_id, max_seq, events, last_event_at, last_ingest_at)"
                " SELECT u.*, %s FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::timestamptz[]) AS u"
                " ON CONFLICT (store_id) DO UPDATE SET"
                " max_seq = GREATEST(stores.max_seq, EXCLUDED.max_seq),"
                " events = stores.events + EXCLUDED.events,"
                " last_event_at = GREATEST(stores.last_event_at, EXCLUDED.last_event_at),"
                " last_ingest_at = EXCLUDED.last_ingest_at",
                (
                    now,
                    ordered,
                    [newest[s].seq for s in ordered],
                    [new_by_store[s] for s in ordered],
                    [newest[s].at for s in ordered],
                ),
            )
        for store, version in sorted(versions):
            await conn.execute(
                "UPDATE stores SET catalogue_version = GREATEST(catalogue_version, %s) WHERE store_id = %s",
                (version, store),
            )
        for st in sorted(statuses, key=lambda st: (st.store, st.audit_seq)):
            await _apply_status(conn, st)
        for e, err in conflicts:
            await conn.execute(
                "INSERT INTO ingest_rejects (subject, stream_seq, error, payload) VALUES (%s, %s, %s, %s)",
                (f"chain.{chain}.{e.store}.events", 0, err, msgspec.json.encode(e)),
            )
        for m, err in rejects:
            await conn.execute(
                "INSERT INTO ingest_rejects (subject, stream_seq, error, payload) VALUES (%s, %s, %s, %s)",
                (m.subject, m.stream_seq, err, m.data),
            )
    return BatchResult(
        new_events=dict(new_by_store),
        duplicates=len(events) - sum(new_by_store.values()) - len(conflicts),
        rejects=len(rejects) + len(conflicts),
        lag_seconds=lag,
    )


async def _project(conn: Any, fresh: list[ChainEvent]) -> list[tuple[str, int]]:
    """Fill the report tables from events applied for the first time; returns the catalogue versions the
    stores reported (applied to their summary rows by the caller, under its lock order)."""
    sales: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    voids: list[tuple[Any, ...]] = []
    rets: list[tuple[Any, ...]] = []
    drawers: list[tuple[Any, ...]] = []
    versions: list[tuple[Any, ...]] = []
    for e in fresh:
        rec = e.record
        if e.action == "sale" and rec is not None:
            r = rec["receipt"]
            sales.append(
                (
                    e.store, r["receipt_number"], e.seq, _local_date(r["sold_at_local"]), r["register_id"],
                    r["sold_at"], rec.get("customer_id", ""), r["subtotal_cents"], r["discount_cents"],
                    r["pretax_cents"], r["tax_cents"], r["total_cents"], r["tendered_cents"],
                    r["change_cents"], r.get("loyalty_points_earned", 0), r.get("loyalty_points_redeemed", 0),
                )
            )  # fmt: skip
            for ln in r["lines"]:
                lines.append(
                    (
                        e.store, r["receipt_number"], ln["line_id"], ln["product_id"], ln["name"],
                        ln["category"], ln["quantity"] if ln["sold_by"] == "each" else 0, ln["weight_mg"],
                        ln["price_cents"], ln["total_cents"],
                    )
                )  # fmt: skip
        elif e.action == "void" and rec is not None:
            voids.append(
                (e.store, rec["receipt_number"], e.seq, rec["voided_at"], e.business_date,
                 rec.get("manager_id", ""), rec.get("reason", ""))
            )  # fmt: skip
        elif e.action == "return" and rec is not None:
            tax = sum(t["amount_cents"] for ln in rec["lines"] for t in ln.get("taxes", ()))
            rets.append(
                (e.store, rec["return_number"], e.seq, rec["original_receipt_number"], rec["returned_at"],
                 e.business_date, rec["refund_cents"], tax)
            )  # fmt: skip
        elif e.action in ("drawer_counted", "drawer_handed_over", "drawer_signed_off"):
            d = e.detail
            session = d.get("session") or d.get("from")
            if session and "variance_cents" in d:
                drawers.append(
                    (e.store, session, e.seq, e.business_date, e.register, d.get("expected_cents"),
                     d.get("counted_cents"), d["variance_cents"], e.action == "drawer_signed_off")
                )  # fmt: skip
        elif e.action == "chain_catalogue_applied":
            versions.append((e.store, int(e.detail.get("version", 0))))
    await _bulk(conn, "sales", _SALE_COLUMNS, sales)
    await _bulk(conn, "sale_lines", _LINE_COLUMNS, lines)
    await _bulk(conn, "voids", _VOID_COLUMNS, voids)
    await _bulk(conn, "returns", _RETURN_COLUMNS, rets)
    for row in sorted(drawers):
        # a later event of the same drawer (the sign-off after the count) wins, whatever the arrival order
        await conn.execute(
            "INSERT INTO drawer_counts AS d (store_id, session_id, seq, business_date, register,"
            " expected_cents, counted_cents, variance_cents, signed_off)"
            " VALUES (%s, %s, %s, %s, %s, COALESCE(%s, 0), COALESCE(%s, 0), %s, %s)"
            " ON CONFLICT (store_id, session_id) DO UPDATE SET"
            " seq = EXCLUDED.seq, variance_cents = EXCLUDED.variance_cents,"
            " expected_cents = CASE WHEN EXCLUDED.expected_cents <> 0 THEN EXCLUDED.expected_cents"
            "   ELSE d.expected_cents END,"
            " counted_cents = CASE WHEN EXCLUDED.counted_cents <> 0 THEN EXCLUDED.counted_cents"
            "   ELSE d.counted_cents END,"
            " signed_off = d.signed_off OR EXCLUDED.signed_off"
            " WHERE d.seq < EXCLUDED.seq",
            row,
        )
    return versions


_SALE_COLUMNS = (
    "store_id, receipt_number, seq, business_date, register, sold_at, customer_id, subtotal_cents,"
    " discount_cents, pretax_cents, tax_cents, total_cents, tendered_cents, change_cents, loyalty_earned,"
    " loyalty_redeemed"
)
_LINE_COLUMNS = "store_id, receipt_number, line_id, product_id, name, category, quantity, weight_mg, net_cents, total_cents"
_VOID_COLUMNS = "store_id, receipt_number, seq, voided_at, business_date, manager_id, reason"
_RETURN_COLUMNS = (
    "store_id, return_number, seq, receipt_number, returned_at, business_date, refund_cents, tax_cents"
)


async def _bulk(conn: Any, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    """COPY ``rows`` into a staging table, then insert what is not there yet (a row is never doubled)."""
    if not rows:
        return
    staging = f"incoming_{table}"
    made = _staged_tables.setdefault(conn, set())
    if table not in made:
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        made.add(table)
    async with conn.cursor() as cur:
        async with cur.copy(f"COPY {staging} ({columns}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        await cur.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} ORDER BY 1, 2 ON CONFLICT DO NOTHING"
        )


async def _apply_status(conn: Any, st: StoreStatus) -> None:
    cur = await conn.execute(
        "INSERT INTO stores (store_id, status_seq, status_at, state_backlog, state_dead_letter)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (store_id) DO UPDATE SET"
        " status_seq = EXCLUDED.status_seq, status_at = EXCLUDED.status_at,"
        " state_backlog = EXCLUDED.state_backlog, state_dead_letter = EXCLUDED.state_dead_letter"
        " WHERE stores.status_seq <= EXCLUDED.status_seq AND"
        " (stores.status_at IS NULL OR stores.status_at <= EXCLUDED.status_at) RETURNING store_id",
        (st.store, st.audit_seq, st.at, st.state_backlog, st.state_dead_letter),
    )
    if await cur.fetchone() is None:
        return  # an older status than the one HQ has: latest wins
    await conn.execute("DELETE FROM inventory WHERE store_id = %s", (st.store,))
    if st.inventory:
        await conn.cursor().executemany(
            "INSERT INTO inventory VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (st.store, s.product_id, s.name, s.category, s.units, s.weight_mg, st.audit_seq)
                for s in st.inventory
            ],
        )
