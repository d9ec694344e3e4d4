"""What HQ shows: plain SQL over the tables the ingest fills. Every amount is integer cents."""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg.rows import dict_row

# a sale counts unless it was voided; its void may have arrived first (see ingest.py)
_LIVE = (
    "NOT EXISTS (SELECT 1 FROM voids v WHERE v.store_id = s.store_id AND v.receipt_number = s.receipt_number)"
)


async def _rows(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    return [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()} for r in rows]


async def stores(conn: Any) -> list[dict[str, Any]]:
    """Each store's feed: events received, gaps, age of the newest, catalogue version, state sync."""
    return await _rows(
        conn,
        "SELECT store_id, name, max_seq, events, max_seq - events AS missing, last_event_at, last_ingest_at,"
        " catalogue_version, state_backlog, state_dead_letter, status_at"
        " FROM stores ORDER BY store_id",
    )


async def sales(
    conn: Any, *, start: date | None, end: date | None, by_category: bool
) -> list[dict[str, Any]]:
    where, params = _window(start, end)
    if by_category:
        return await _rows(
            conn,
            "SELECT s.store_id, s.business_date, l.category, count(*) AS lines, sum(l.quantity) AS units,"
            " sum(l.weight_mg) AS weight_mg, sum(l.net_cents) AS net_cents"
            f" FROM sales s JOIN sale_lines l USING (store_id, receipt_number) WHERE {_LIVE}{where}"
            " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            params,
        )
    return await _rows(
        conn,
        "SELECT s.store_id, s.business_date, count(*) AS sales, sum(s.total_cents) AS total_cents,"
        " sum(s.tax_cents) AS tax_cents FROM sales s"
        f" WHERE {_LIVE}{where} GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )


def _window(
    start: date | None, end: date | None, col: str = "s.business_date"
) -> tuple[str, tuple[Any, ...]]:
    where = ""
    params: list[Any] = []
    if start is not None:
        where += f" AND {col} >= %s"
        params.append(start)
    if end is not None:
        where += f" AND {col} <= %s"
        params.append(end)
    return where, tuple(params)


async def z_reports(conn: Any, day: date, store: str | None = None) -> list[dict[str, Any]]:
    """The figures of each store's Z report for a store-local date, as HQ received them."""
    only = " AND s.store_id = %s" if store else ""
    params: tuple[Any, ...] = (day, store) if store else (day,)
    sales_rows = await _rows(
        conn,
        "SELECT s.store_id,"
        f" count(*) FILTER (WHERE {_LIVE}) AS sales_count,"
        f" COALESCE(sum(s.subtotal_cents) FILTER (WHERE {_LIVE}), 0) AS gross_cents,"
        f" COALESCE(sum(s.discount_cents) FILTER (WHERE {_LIVE}), 0) AS discounts_cents,"
        f" COALESCE(sum(s.pretax_cents) FILTER (WHERE {_LIVE}), 0) AS pretax_cents,"
        f" COALESCE(sum(s.tax_cents) FILTER (WHERE {_LIVE}), 0) AS tax_cents,"
        f" COALESCE(sum(s.total_cents) FILTER (WHERE {_LIVE}), 0) AS total_cents,"
        f" COALESCE(sum(s.tendered_cents) FILTER (WHERE {_LIVE}), 0) AS tendered_cents,"
        f" COALESCE(sum(s.change_cents) FILTER (WHERE {_LIVE}), 0) AS change_cents,"
        f" count(*) FILTER (WHERE NOT {_LIVE}) AS voids_count,"
        f" COALESCE(sum(s.total_cents) FILTER (WHERE NOT {_LIVE}), 0) AS voids_cents"
        f" FROM sales s WHERE s.business_date = %s{only} GROUP BY s.store_id",
        params,
    )
    ret_rows = await _rows(
        conn,
        "SELECT s.store_id, count(*) AS returns_count, sum(s.refund_cents) AS returns_cents,"
        f" sum(s.tax_cents) AS returns_tax_cents FROM returns s WHERE s.business_date = %s{only}"
        " GROUP BY s.store_id",
        params,
    )
    drawer_rows = await _rows(
        conn,
        "SELECT s.store_id, sum(s.variance_cents) AS drawer_variance_cents FROM drawer_counts s"
        f" WHERE s.business_date = %s{only} GROUP BY s.store_id",
        params,
    )
    out: dict[str, dict[str, Any]] = {}
    zero = {
        "sales_count": 0, "gross_cents": 0, "discounts_cents": 0, "pretax_cents": 0, "tax_cents": 0,
        "total_cents": 0, "tendered_cents": 0, "change_cents": 0, "voids_count": 0, "voids_cents": 0,
        "returns_count": 0, "returns_cents": 0, "returns_tax_cents": 0, "drawer_variance_cents": 0,
    }  # fmt: skip
    for rows in (sales_rows, ret_rows, drawer_rows):
        for r in rows:
            z = out.setdefault(
                r["store_id"], {"store_id": r["store_id"], "business_date": day.isoformat(), **zero}
            )
            z.update({k: int(v or 0) for k, v in r.items() if k != "store_id"})
    for z in out.values():
        z["net_cents"] = z["gross_cents"] - z["discounts_cents"]
        z["net_after_returns_cents"] = z["total_cents"] - z["returns_cents"]
    return [out[k] for k in sorted(out)]


async def inventory(conn: Any, store: str | None = None) -> list[dict[str, Any]]:
    only = " WHERE store_id = %s" if store else ""
    return await _rows(
        conn,
        "SELECT store_id, product_id, name, category, units, weight_mg, as_of_seq FROM inventory"
        f"{only} ORDER BY store_id, product_id",
        (store,) if store else (),
    )


async def drawers(conn: Any, *, start: date | None, end: date | None) -> list[dict[str, Any]]:
    where, params = _window(start, end, "business_date")
    return await _rows(
        conn,
        "SELECT store_id, business_date, session_id, register, expected_cents, counted_cents, variance_cents,"
        f" signed_off FROM drawer_counts WHERE true{where} ORDER BY store_id, business_date, session_id",
        params,
    )


async def state_sync(conn: Any) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        "SELECT st.store_id, st.state_backlog, st.state_dead_letter, st.status_at,"
        " (SELECT count(*) FROM events e WHERE e.store_id = st.store_id AND e.action = 'state_dead_letter')"
        " AS dead_letters_ever FROM stores st ORDER BY st.store_id",
    )


async def customers(conn: Any) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        "SELECT s.store_id, count(DISTINCT s.customer_id) FILTER (WHERE s.customer_id <> '') AS customers,"
        " count(*) AS sales, sum(s.loyalty_earned) AS loyalty_earned,"
        f" sum(s.loyalty_redeemed) AS loyalty_redeemed FROM sales s WHERE {_LIVE} GROUP BY 1 ORDER BY 1",
    )
