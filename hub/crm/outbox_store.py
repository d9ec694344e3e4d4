"""The CRM bridge's outbox in LMDB: the same ``OutboxEntry`` and decisions as the state channel
(``hub.domain.outbox``), in a table of its own so the two channels never hold each other up.

- ``crm_outbox``: u64 seq -> OutboxEntry, licence ``"crm"``, kind ``"customer"`` or ``"sale"``, payload the
  msgpack of a ``hub.domain.crm.CrmEvent``; ``package_labels`` = ("customer:<id>",) keeps one customer's
  events in order (an upsert before that customer's sale).
- ``CRM_LOW`` (hub/store/layout.py): no unsent entry below this seq.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import lmdb
import msgspec

from hub import audit
from hub.domain.catalog import Customer
from hub.domain.crm import SCHEMA, CrmCustomer, CrmEvent, CrmLine, CrmMessage, CrmSale, utc
from hub.domain.customers import has_consent, may_email, may_text
from hub.domain.outbox import OutboxEntry
from hub.domain.receipt import Receipt
from hub.store.env import Store, decode, encode, next_seq, put, tget
from hub.store.keys import u64
from hub.store.layout import CRM_LOW

LICENCE = "crm"


def shares_with_crm(c: Customer) -> bool:
    """Only customers who said yes to marketing are known to the CRM (B&P 26161.5: no third party without
    consent); a withdrawn consent is still sent once, so the CRM stops (``customer_event`` decides)."""
    return c.consent_to_retain and not c.merged_into and has_consent(c, "marketing")


def customer_event(c: Customer, *, licence: str, store_name: str, now: datetime, seq_hint: int) -> CrmEvent:
    consents = {"marketing": has_consent(c, "marketing"), "sms": has_consent(c, "sms")}
    return CrmEvent(
        schema=SCHEMA,
        event_id=f"{licence}:customer:{c.id}:{seq_hint}",
        type="customer.upserted",
        occurred_at=utc(now),
        store={"licence": licence, "name": store_name},
        customer=CrmCustomer(
            id=c.id,
            first_name=c.display_name,
            last_name=c.family_name,
            birth_date=c.birth_date.isoformat(),
            phone=c.phone if may_text(c) or (c.phone and consents["marketing"]) else "",
            email=c.email if may_email(c) else "",
            consents=consents,
            points=c.loyalty_points,
            lifetime_points=c.lifetime_points,
            groups=list(c.groups),
        ),
    )


def sale_event(receipt: Receipt, customer_id: str, *, licence: str, store_name: str) -> CrmEvent:
    return CrmEvent(
        schema=SCHEMA,
        event_id=f"{licence}:sale:{receipt.receipt_number}",
        type="sale.completed",
        occurred_at=utc(receipt.sold_at),
        store={"licence": licence, "name": store_name},
        sale=CrmSale(
            receipt_number=receipt.receipt_number,
            sold_at=utc(receipt.sold_at),
            customer_id=customer_id,
            subtotal_cents=receipt.subtotal_cents,
            discount_cents=receipt.discount_cents,
            tax_cents=receipt.tax_cents,
            total_cents=receipt.total_cents,
            points_earned=receipt.loyalty_points_earned,
            points_redeemed=receipt.loyalty_points_redeemed,
            lines=[
                CrmLine(
                    product_id=ln.product_id,
                    name=ln.name,
                    brand=ln.brand,
                    category=ln.category,
                    quantity=ln.quantity,
                    weight_mg=ln.weight_mg,
                    total_cents=ln.total_cents,
                )
                for ln in receipt.lines
            ],
        ),
    )


def enqueue(
    txn: lmdb.Transaction, store: Store, event: CrmEvent, customer_id: str, now: datetime
) -> OutboxEntry:
    """Add an event to the outbox, in the caller's transaction (the sale's, the enrolment's)."""
    seq = next_seq(txn, store, "crm_outbox")
    entry = OutboxEntry(
        seq=seq,
        kind="customer" if event.customer is not None else "sale",
        licence=LICENCE,
        idempotency_key=event.event_id,
        payload=encode(event),
        package_labels=(f"customer:{customer_id}",),
        created_at=now,
        next_attempt_at=now,
    )
    put(txn, store, "crm_outbox", u64(seq), entry)
    return entry


def enqueue_customer(
    txn: lmdb.Transaction,
    store: Store,
    c: Customer,
    before: Customer | None,
    *,
    licence: str,
    store_name: str,
    now: datetime,
) -> OutboxEntry | None:
    """An upsert when the CRM may know the customer, or must hear that it may no longer."""
    if not shares_with_crm(c) and not (before is not None and shares_with_crm(before)):
        return None
    seq = next_seq(txn, store, "crm_outbox")
    event = customer_event(c, licence=licence, store_name=store_name, now=now, seq_hint=seq)
    return enqueue(txn, store, event, c.id, now)


def low_water(store: Store) -> int:
    return CRM_LOW.read(store) or 0


def unsent(store: Store) -> list[OutboxEntry]:
    out: list[OutboxEntry] = []
    with store.read() as txn, txn.cursor(db=store.db("crm_outbox")) as cur:
        if cur.set_range(u64(low_water(store))):
            for _, raw in cur:
                e = decode(raw, OutboxEntry)
                if e.state != "sent":
                    out.append(e)
    return out


def recent(store: Store, limit: int = 100) -> list[OutboxEntry]:
    out: list[OutboxEntry] = []
    with store.read() as txn, txn.cursor(db=store.db("crm_outbox")) as cur:
        if cur.last():
            for _, raw in cur.iterprev():
                out.append(decode(raw, OutboxEntry))
                if len(out) >= limit:
                    break
    return out


def event_of(entry: OutboxEntry) -> CrmEvent:
    return msgspec.msgpack.decode(entry.payload, type=CrmEvent)


def save(store: Store, expected_state: str, updated: OutboxEntry) -> Callable[[lmdb.Transaction], bool]:
    """Store ``updated`` if the stored entry is still in ``expected_state`` (a person may have retried it)."""

    def fn(txn: lmdb.Transaction) -> bool:
        current = tget(txn, store, "crm_outbox", u64(updated.seq), OutboxEntry)
        if current is None or current.state != expected_state:
            return False
        put(txn, store, "crm_outbox", u64(updated.seq), updated)
        if updated.state == "dead":
            audit.append(
                txn,
                store,
                "crm_dead_letter",
                detail={"seq": updated.seq, "event": updated.idempotency_key, "error": updated.last_error},
            )
        return True

    return fn


def set_low_water(store: Store, seq: int) -> Callable[[lmdb.Transaction], None]:
    def fn(txn: lmdb.Transaction) -> None:
        CRM_LOW.put(txn, store, seq)

    return fn


def message_event(
    c: Customer, text_: str, *, licence: str, store_name: str, now: datetime, seq_hint: int
) -> CrmEvent:
    return CrmEvent(
        schema=SCHEMA,
        event_id=f"{licence}:sms:{c.id}:{seq_hint}",
        type="message.sms",
        occurred_at=utc(now),
        store={"licence": licence, "name": store_name},
        message=CrmMessage(customer_id=c.id, to=c.phone, text=text_),
    )
