"""Cash-compliance flags on sales: Form 8300 aggregation and structuring, kept with their reviews.

After every sale with cash the hub asks the core (``hub.domain.cash_compliance``) which flags that sale
raises or grows for its customer, stores them in ``cash_flags`` and tells the back office. The sale itself
has already committed: a flag informs a manager and never blocks a lawful sale. Flags are kept with every
review (Form 8300 copies are kept 5 years, compliance-and-market.md §1); the back-office list also
recomputes from the sales, so a flag missed while the hub was down still shows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import lmdb
import msgspec
import trio

from hub import audit
from hub.access import HandlerTable
from hub.backoffice import protocol as bp
from hub.backoffice.records import sales_since
from hub.commands import Request
from hub.domain.cash_compliance import CashEvent, CashFlag, CashPolicy, FlagReview, assess, flags_for_sale
from hub.domain.receipt import SaleRecord
from hub.errors import NotFound
from hub.store.env import Store, decode, put, tget
from hub.store.keys import micros, text, u64
from hub.store.layout import LEDGER
from hub.supervisor import ChildSpec

if TYPE_CHECKING:
    from actors.register import RegisterActor
    from hub.app import Hub
    from hub.supervisor import Supervisor

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()

log = logging.getLogger("hub.backoffice.cash")
POLICY = CashPolicy()
LIST_DAYS = 35


class StoredFlag(msgspec.Struct, kw_only=True):
    flag: CashFlag
    first_seen_at: datetime
    reviews: list[FlagReview] = []

    @property
    def open(self) -> bool:
        return not self.reviews


class _CashTender(msgspec.Struct, frozen=True):
    kind: str
    amount_cents: int


class _CashReceipt(msgspec.Struct, frozen=True):
    receipt_number: int
    register_id: str
    sold_at: datetime
    tenders: tuple[_CashTender, ...]
    change_cents: int


class CashView(msgspec.Struct, frozen=True):
    """What the flags read of a stored SaleRecord (same field names; the rest of the record is skipped
    by the decoder, not built: a sale's lines, taxes and texts are most of its bytes)."""

    receipt: _CashReceipt
    customer_id: str = ""
    voided: bool = False


def cash_event(sale: SaleRecord | CashView) -> CashEvent | None:
    """Cash the customer handed over for a sale (tendered cash minus change); None without cash."""
    r = sale.receipt
    cash = sum(t.amount_cents for t in r.tenders if t.kind == "cash") - r.change_cents
    if cash <= 0 or sale.voided:
        return None
    return CashEvent(
        customer_id=sale.customer_id,
        at=r.sold_at,
        cash_cents=cash,
        receipt_number=r.receipt_number,
        register_id=r.register_id,
    )


def events_since(store: Store, since: datetime, zone: ZoneInfo) -> list[CashEvent]:
    return [e for s in sales_since(store, since, zone) if (e := cash_event(s)) is not None]


def customer_cash_events(store: Store, customer_id: str, since: datetime) -> list[CashEvent]:
    """One customer's cash since ``since``, through their purchase ledger (customer, time, receipt): the
    cost follows this customer's visits, not the store's day."""
    out: list[CashEvent] = []
    with store.read() as txn:
        sales = store.db("sales")
        for _, entry in LEDGER.scan(txn, store, (customer_id,), start=(customer_id, micros(since))):
            raw = txn.get(u64(entry.receipt_number), db=sales)
            if raw is not None and (e := cash_event(decode(raw, CashView))) is not None:
                out.append(e)
    return out


def stored_flags(store: Store) -> dict[str, StoredFlag]:
    with store.read() as txn:
        return {bytes(k).decode(): decode(v, StoredFlag) for k, v in txn.cursor(db=store.db("cash_flags"))}


def current_flags(store: Store, zone: ZoneInfo, now: datetime) -> list[StoredFlag]:
    """Stored flags, plus any the recent sales raise that were never stored; newest first."""
    kept = stored_flags(store)
    for f in assess(events_since(store, now - timedelta(days=LIST_DAYS), zone), POLICY):
        prev = kept.get(f.flag_id)
        if prev is None:
            kept[f.flag_id] = StoredFlag(flag=f, first_seen_at=f.window_end)
        elif len(f.receipt_numbers) > len(prev.flag.receipt_numbers):
            prev.flag = f
    return sorted(kept.values(), key=lambda s: s.flag.window_end, reverse=True)


def upsert(txn: lmdb.Transaction, store: Store, flag: CashFlag, now: datetime) -> bool:
    """Store a raised or grown flag; returns True when it is new. Reviews are kept."""
    key = text(flag.flag_id)
    prev = tget(txn, store, "cash_flags", key, StoredFlag)
    if prev is None:
        put(txn, store, "cash_flags", key, StoredFlag(flag=flag, first_seen_at=now))
        return True
    if len(flag.receipt_numbers) > len(prev.flag.receipt_numbers):
        prev.flag = flag
        put(txn, store, "cash_flags", key, prev)
    return False


CHECK_TICK = 0.2  # seconds between two passes over the receipts that came in


class CashWatch:
    """Takes receipt numbers from the after-sale hook and turns them into stored flags, off the sale's path."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.send, self.recv = trio.open_memory_channel[int](1000)

    def after_sale(self, hub: Hub, register_id: str, receipt_number: int, settlement: Any) -> None:
        if getattr(settlement, "cash_received_cents", 0) <= 0:
            return
        try:
            self.send.send_nowait(receipt_number)
        except trio.WouldBlock:
            # the list recomputes from the sales, so a dropped notice is late, never lost
            log.warning(
                "cash-flag queue full; receipt %d will be flagged from the sales list", receipt_number
            )

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """The receipts of a tick at once: one write and one back-office publish for all their flags, and
        at most one pass every CHECK_TICK seconds on the trio thread, however many sales come in."""
        task_status.started(self)
        async for number in self.recv:
            numbers = [number]
            while True:
                try:
                    numbers.append(self.recv.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await self.check_many(numbers)
            await trio.sleep(CHECK_TICK)

    async def check(self, receipt_number: int) -> list[CashFlag]:
        return await self.check_many([receipt_number])

    async def check_many(self, receipt_numbers: list[int]) -> list[CashFlag]:
        hub = self.hub
        store = hub.store
        found: list[tuple[CashEvent, list[CashFlag]]] = []
        for receipt_number in receipt_numbers:
            sale = store.get("sales", u64(receipt_number), CashView)
            new = cash_event(sale) if sale is not None else None
            if new is None or not new.customer_id:
                continue
            window = max(POLICY.related_window, POLICY.structuring_window)
            history = [
                e
                for e in customer_cash_events(store, new.customer_id, new.at - window)
                if e.receipt_number != receipt_number
            ]
            flags = flags_for_sale(history, new, POLICY)
            if flags:
                found.append((new, flags))
        if not found:
            return []
        now = datetime.now(UTC)

        def fn(txn: lmdb.Transaction) -> None:
            for new, flags in found:
                for f in flags:
                    if upsert(txn, store, f, now):
                        audit.append(
                            txn,
                            store,
                            "cash_flag_raised",
                            register=new.register_id,
                            detail={
                                "flag": f.flag_id,
                                "kind": f.kind,
                                "customer": f.customer_id,
                                "total_cents": f.total_cents,
                                "receipts": list(f.receipt_numbers),
                            },
                        )

        await hub.writer.write(fn, label="cash_flags")
        publish_office(hub.registers)
        return [f for _, flags in found for f in flags]


def publish_office(registers: Mapping[str, RegisterActor]) -> None:
    for actor in registers.values():
        if is_office(actor.id):
            actor.publish()


def is_office(register_id: str) -> bool:
    return register_id.upper().startswith("OFFICE")


async def start(hub: Hub, sup: Supervisor) -> None:

    watch = hub.services.cash_watch
    assert watch is not None  # wired with the back office
    await sup.start(ChildSpec(name="cash-flags", run=watch.run))


@HANDLERS.handles(bp.ReviewCashFlag, role="manager")
async def review_cash_flag(req: Request, msg: bp.ReviewCashFlag) -> Any:
    store = req.store
    now = datetime.now(UTC)
    found = next(
        (s for s in current_flags(store, req.config.zone, now) if s.flag.flag_id == msg.flag_id), None
    )
    if found is None:
        raise NotFound("There is no such cash flag.")
    review = FlagReview(
        flag_id=msg.flag_id, reviewed_by=req.staff_id, at=now, decision=msg.decision, note=msg.note
    )

    def fn(txn: lmdb.Transaction) -> Any:
        key = text(msg.flag_id)
        stored = tget(txn, store, "cash_flags", key, StoredFlag) or found
        # a new record, never a change to ``found``: the writer may run this again (a batch re-run) and the
        # flag computed outside the transaction must not keep the first run's review
        stored = msgspec.structs.replace(stored, reviews=[*stored.reviews, review])
        put(txn, store, "cash_flags", key, stored)
        audit.append(
            txn,
            store,
            "cash_flag_reviewed",
            staff=req.staff_id,
            register=req.register_id,
            detail={"flag": msg.flag_id, "decision": msg.decision, "note": msg.note},
        )
        return {"flag_id": msg.flag_id, "reviews": len(stored.reviews)}

    result = await req.commit(fn)
    publish_office(req.registers)
    return result


def flag_row(s: StoredFlag) -> dict[str, Any]:
    f = s.flag
    return {
        "flag_id": f.flag_id,
        "kind": f.kind,
        "customer_id": f.customer_id,
        "window_start": f.window_start.isoformat(),
        "window_end": f.window_end.isoformat(),
        "total_cents": f.total_cents,
        "threshold_cents": f.threshold_cents,
        "receipts": list(f.receipt_numbers),
        "sentence": f.sentence,
        "open": s.open,
        "reviews": [msgspec.to_builtins(r) for r in s.reviews],
    }
