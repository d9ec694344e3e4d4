"""Cash flags from the store's sales: $9,900 then $200 cash within 24 hours is flagged for Form 8300; two
customers are never merged; cash more than 24 hours apart is not related; a manager's review is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import lmdb
import pytest
import trio

from hub import audit
from hub.app import Hub
from hub.backoffice.cash_flags import CashWatch, StoredFlag
from hub.client import connect
from hub.domain.receipt import Receipt, SaleRecord, StoreIdentity, local_time_text
from hub.domain.tender import Tender
from hub.store.env import decode, put
from hub.store.keys import joined, u64
from tests.backoffice.office_helpers import ready
from tests.conftest import ws_url


def cash_sale(hub: Hub, number: int, customer: str, cash_cents: int, at: datetime) -> SaleRecord:
    tz = hub.config.store.time_zone
    receipt = Receipt(
        store=StoreIdentity(name="Test", licence=hub.config.store.licence, timezone=tz),
        receipt_number=number,
        register_id="R1",
        cashier="ana",
        sold_at=at,
        sold_at_local=local_time_text(at, tz),
        customer_type="adult",
        lines=(),
        subtotal_cents=cash_cents,
        discount_cents=0,
        pretax_cents=cash_cents,
        taxes=(),
        tax_cents=0,
        total_cents=cash_cents,
        tenders=(Tender(kind="cash", amount_cents=cash_cents + 50),),
        tendered_cents=cash_cents + 50,
        change_cents=50,
        prices_include_tax=False,
        rounding_note="",
    )
    return SaleRecord(receipt=receipt, customer_id=customer)


async def store_sales(hub: Hub, sales: list[SaleRecord]) -> None:
    """Write sales as the sale commit does: the record, the day index and the customer's ledger."""
    from hub.domain.ledger import LedgerEntry
    from hub.store.keys import micros
    from hub.store.layout import LEDGER

    def fn(txn: lmdb.Transaction) -> None:
        for s in sales:
            put(txn, hub.store, "sales", u64(s.receipt_number), s)
            day = s.receipt.sold_at.astimezone(hub.config.zone).date().isoformat().encode()
            txn.put(joined(day, u64(s.receipt_number)), b"", db=hub.store.db("sales_by_day"))
            entry = LedgerEntry(receipt_number=s.receipt_number, at=s.receipt.sold_at, items=[])
            LEDGER.put(txn, hub.store, (s.customer_id, micros(s.receipt.sold_at), s.receipt_number), entry)

    await hub.writer.write(fn)


async def test_related_cash_is_flagged_per_customer(office_hub: Hub) -> None:
    hub = office_hub
    watch: CashWatch = hub.services.cash_watch
    now = datetime.now(UTC)
    a1 = cash_sale(hub, 9001, "cust-A", 990_000, now - timedelta(hours=3))
    b1 = cash_sale(hub, 9002, "cust-B", 20_000, now - timedelta(hours=2))  # someone else's $200
    c1 = cash_sale(hub, 9003, "cust-C", 990_000, now - timedelta(hours=30))
    c2 = cash_sale(hub, 9004, "cust-C", 20_000, now - timedelta(hours=1))  # 29 h later: not related
    a2 = cash_sale(hub, 9005, "cust-A", 20_000, now - timedelta(minutes=30))
    await store_sales(hub, [a1, b1, c1, c2, a2])
    for s in (a1, b1, c1, c2):
        assert await watch.check(s.receipt_number) == []
    # the last one through the after-sale hook, as the sale calls it: flagged by the supervised watcher
    watch.after_sale(hub, "R1", a2.receipt_number, SimpleNamespace(cash_received_cents=20_050))
    with trio.fail_after(5):
        while hub.store.count("cash_flags") == 0:
            await trio.sleep(0.01)
    with hub.store.read() as txn:
        [stored] = [decode(v, StoredFlag) for _, v in txn.cursor(db=hub.store.db("cash_flags"))]
    flag = stored.flag
    assert flag.kind == "form_8300" and flag.customer_id == "cust-A"
    assert flag.receipt_numbers == (9001, 9005) and flag.total_cents == 1_010_000
    assert stored.open

    with trio.fail_after(20):
        async with connect(ws_url(hub)) as office:
            await ready(office, "OFFICE", "maria")
            snap = await office.wait_snapshot(lambda s: s.get("office", {}).get("open_cash_flags") == 1)
            assert snap["state"]["office"]["open_cash_flags"] == 1
            auth = {"authorization": f"Bearer {office.session_token}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
                rows = (await http.get("/api/backoffice/cash-flags", headers=auth)).json()["flags"]
                assert [(r["customer_id"], r["kind"], r["open"]) for r in rows] == [
                    ("cust-A", "form_8300", True)
                ]
                await office.request(
                    "review_cash_flag",
                    flag_id=flag.flag_id,
                    decision="file_8300",
                    note="Form 8300 to be e-filed by Friday; customer statement by Jan 31",
                )
                rows = (await http.get("/api/backoffice/cash-flags", headers=auth)).json()["flags"]
                [row] = rows
                assert row["open"] is False
                assert row["reviews"][0]["reviewed_by"] == "maria"
                assert row["reviews"][0]["decision"] == "file_8300"
    actions = [e.action for _, raw in audit.iter_entries(hub.store) if (e := decode(raw, audit.AuditEntry))]
    assert "cash_flag_raised" in actions and "cash_flag_reviewed" in actions
    n, brk = audit.verify(hub.store)
    assert brk is None and n > 0


async def test_the_receipts_of_a_tick_are_checked_together_in_one_write(
    office_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher takes every receipt that came in since its last pass: one write, one publish for all
    their flags (the trio thread pays per tick, not per sale), the same flags as one by one."""
    hub = office_hub
    watch: CashWatch = hub.services.cash_watch
    now = datetime.now(UTC)
    a1 = cash_sale(hub, 9101, "cust-A", 990_000, now - timedelta(hours=3))
    d1 = cash_sale(hub, 9102, "cust-D", 995_000, now - timedelta(hours=2))
    a2 = cash_sale(hub, 9103, "cust-A", 20_000, now - timedelta(minutes=30))
    d2 = cash_sale(hub, 9104, "cust-D", 10_000, now - timedelta(minutes=20))
    await store_sales(hub, [a1, d1, a2, d2])
    labels: list[str] = []
    write = hub.writer.write

    async def counted(fn: Any, *, label: str = "write") -> Any:
        labels.append(label)
        return await write(fn, label=label)

    monkeypatch.setattr(hub.writer, "write", counted)
    flags = await watch.check_many([a2.receipt_number, d2.receipt_number])
    assert sorted((f.customer_id, f.receipt_numbers) for f in flags) == [
        ("cust-A", (9101, 9103)),
        ("cust-D", (9102, 9104)),
    ]
    assert labels.count("cash_flags") == 1 and hub.store.count("cash_flags") == 2


def test_the_cash_view_of_a_stored_sale_reads_what_the_whole_record_says() -> None:
    """The flags decode only what they read of a stored sale (CashView): for cash with change, a voided
    sale, a card sale and an anonymous one, the cash event is the one the whole SaleRecord gives."""
    from msgspec import structs

    from hub.backoffice.cash_flags import CashView, cash_event
    from hub.store.env import encode

    at = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    hub: Any = SimpleNamespace(
        config=SimpleNamespace(store=SimpleNamespace(time_zone="America/Denver", licence="L1"))
    )
    cash = cash_sale(hub, 7, "cust-1", 9_900_00, at)
    card = structs.replace(
        cash,
        receipt=structs.replace(
            cash.receipt,
            tenders=(Tender(kind="debit", amount_cents=9_900_00, reference="A1"),),
            change_cents=0,
        ),
    )
    for record in (cash, structs.replace(cash, voided=True), card, structs.replace(cash, customer_id="")):
        raw = encode(record)
        assert cash_event(decode(raw, CashView)) == cash_event(decode(raw, SaleRecord))
    assert cash_event(decode(encode(cash), CashView)) is not None


async def test_a_review_written_twice_by_a_rerun_batch_is_kept_once(
    office_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer runs a batch again when a cart save in it fails after all (every request nested the second
    time): a review of a flag not yet stored must not leave its first run's mark on the in-memory flag, or
    the second run stores it twice."""
    from hub.access import StaffSession
    from hub.backoffice import cash_flags
    from hub.backoffice.protocol import ReviewCashFlag
    from hub.commands import Request
    from hub.domain.cash_compliance import CashFlag
    from hub.store.writer import WriteRequest

    hub = office_hub
    now = datetime.now(UTC)
    flag = CashFlag(
        flag_id="form_8300:cust-Z:77",
        kind="form_8300",
        customer_id="cust-Z",
        window_start=now - timedelta(hours=2),
        window_end=now,
        total_cents=1_010_000,
        receipt_numbers=(77, 78),
        threshold_cents=1_000_000,
        sentence="Cash over $10,000 in 24 hours.",
    )
    found = StoredFlag(flag=flag, first_seen_at=now)  # computed from the sales, not stored yet
    monkeypatch.setattr(cash_flags, "current_flags", lambda store, zone, at: [found])
    manager = StaffSession(
        staff_id="maria", name="Maria", role="manager", register_id="OFFICE", token_hash=b"t", last_seen=now
    )
    msg = ReviewCashFlag(id="rv-1", flag_id=flag.flag_id, decision="file_8300", note="Filed by Friday")
    req = Request.for_hub(hub, msg, "OFFICE", manager)

    def failing_cart_save(txn: lmdb.Transaction) -> None:
        raise ValueError("a cart save that fails after all")

    written: list[Any] = []

    async def into_a_batch(fn: Any, **_: Any) -> Any:  # the review's write, run in a batch after it
        written.append(fn)
        batch = [WriteRequest(fn, "review_cash_flag"), WriteRequest(failing_cart_save, "cart", behind=True)]
        await hub.writer._commit_batch(batch)  # noqa: SLF001 - the batch the writer would run
        assert batch[1].result is not None and batch[1].result.error is not None  # it ran twice
        return batch[0].result.unwrap() if batch[0].result is not None else None

    req.commit = into_a_batch  # type: ignore[method-assign]
    with trio.fail_after(10):
        result = await cash_flags.review_cash_flag(req, msg)
    assert written and result["reviews"] == 1
    assert found.reviews == []  # the computed flag is not changed by the write
    with hub.store.read() as txn:
        [stored] = [decode(v, StoredFlag) for _, v in txn.cursor(db=hub.store.db("cash_flags"))]
    assert [r.reviewed_by for r in stored.reviews] == ["maria"]
