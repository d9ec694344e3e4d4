"""Orders in LMDB. Every change of an order goes through :func:`save_order` inside the writer's transaction:
the order, its open-index entry, the reservation index of each product it touches, the audit entry, the
channel callback and the customer notice commit together or not at all.

Reads are short read transactions (``*_in_txn`` variants take the writer's transaction, so a check and the
change it guards see the same stock).
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from typing import Any

import lmdb
import msgspec

from hub import audit
from hub.domain.catalog import Package, Product
from hub.domain.delivery import Delivery
from hub.domain.orders import Holding, Order, ProductReservations, free_quantity, holdings
from hub.store.env import Store, decode, next_seq, put, tget
from hub.store.keys import joined, text, u64
from hub.store.layout import DELIVERY_LOW

NOTICE_KINDS = ("accepted", "substitution", "ready", "cancelled")
log = logging.getLogger("hub.orders")


# ---------------------------------------------------------------------------------------------- reads
def order(store: Store, order_id: str) -> Order | None:
    return store.get("orders", text(order_id), Order)


def order_in_txn(txn: lmdb.Transaction, store: Store, order_id: str) -> Order | None:
    return tget(txn, store, "orders", text(order_id), Order)


def by_external_in_txn(txn: lmdb.Transaction, store: Store, channel: str, external_id: str) -> Order | None:
    oid = txn.get(joined(text(channel), text(external_id)), db=store.db("orders_by_external"))
    return None if oid is None else order_in_txn(txn, store, bytes(oid).decode())


def open_orders(store: Store) -> list[Order]:
    """The open orders the queue, expiry and metrics can reason about. One stored order that cannot be read,
    or whose promised time has no offset (intake accepted that before it demanded one), is logged and left
    out: it must not take the queue, expiry and /metrics down for every other order."""
    with store.read() as txn:
        out = []
        for key in txn.cursor(db=store.db("orders_open")).iternext(values=False):
            oid = bytes(key).decode(errors="replace")
            try:
                o = order_in_txn(txn, store, oid)
            except (msgspec.DecodeError, ValueError) as exc:
                log.error("open order %s cannot be read, left out of the queue and expiry: %s", oid, exc)
                continue
            if o is None:
                continue
            if o.promised_at.tzinfo is None or o.created_at.tzinfo is None:
                log.error(
                    "open order %s has a promised time without offset, left out of the queue and expiry", oid
                )
                continue
            out.append(o)
        return out


def reservations_in_txn(txn: lmdb.Transaction, store: Store, product_id: str) -> ProductReservations | None:
    return tget(txn, store, "order_reservations", text(product_id), ProductReservations)


def inv_product(txn: lmdb.Transaction, store: Store, product_id: str) -> Product | None:
    return tget(txn, store, "products", text(product_id), Product)


def packages_in_txn(txn: lmdb.Transaction, store: Store, product_id: str) -> list[Package]:
    prefix = text(product_id) + b"\x00"
    out: list[Package] = []
    with txn.cursor(db=store.db("packages_by_product")) as cur:
        if cur.set_range(prefix):
            for k in cur.iternext(values=False):
                kb = bytes(k)
                if not kb.startswith(prefix):
                    break
                pkg = tget(txn, store, "packages", kb[len(prefix) :], Package)
                if pkg is not None:
                    out.append(pkg)
    return out


def free_in_txn(
    txn: lmdb.Transaction, store: Store, product: Product, today: date, *, except_order: str = ""
) -> int:
    return free_quantity(
        product,
        packages_in_txn(txn, store, product.id),
        reservations_in_txn(txn, store, product.id),
        today,
        except_order=except_order,
    )


def free_of(store: Store, product: Product, today: date, *, except_order: str = "") -> int:
    with store.read() as txn:
        return free_in_txn(txn, store, product, today, except_order=except_order)


# ---------------------------------------------------------------------------------------------- writes
def next_order_id(txn: lmdb.Transaction, store: Store) -> str:
    raw = txn.get(b"order_seq", db=store.db("meta"))
    n = (int.from_bytes(raw, "big") if raw is not None else 0) + 1
    txn.put(b"order_seq", n.to_bytes(8, "big"), db=store.db("meta"))
    return f"W{n:06d}"


def seen_signature(txn: lmdb.Transaction, store: Store, channel: str, sig: str, now: float) -> bool:
    """True when this exact signed request came before (a replay); otherwise remember it."""
    key = joined(text(channel), text(sig))
    db = store.db("order_replays")
    if txn.get(key, db=db) is not None:
        return True
    txn.put(key, u64(int(now)), db=db)
    return False


def has_signatures_before(store: Store, before: float) -> bool:
    with store.read() as txn:
        return any(
            int.from_bytes(bytes(v), "big") < before for _, v in txn.cursor(db=store.db("order_replays"))
        )


def prune_signatures(txn: lmdb.Transaction, store: Store, before: float) -> int:
    db = store.db("order_replays")
    old = [bytes(k) for k, v in txn.cursor(db=db) if int.from_bytes(bytes(v), "big") < before]
    for k in old:
        txn.delete(k, db=db)
    return len(old)


def _reindex(txn: lmdb.Transaction, store: Store, old: Order | None, new: Order) -> None:
    before = holdings(old) if old is not None else {}
    after = holdings(new)
    for product_id in set(before) | set(after):
        h: Holding | None = after.get(product_id)
        if before.get(product_id) == h:
            continue
        res = reservations_in_txn(txn, store, product_id) or ProductReservations()
        if h is None:
            res.orders.pop(new.id, None)
        else:
            res.orders[new.id] = h
        if res.orders:
            put(txn, store, "order_reservations", text(product_id), res)
        else:
            txn.delete(text(product_id), db=store.db("order_reservations"))


def save_order(
    txn: lmdb.Transaction,
    store: Store,
    old: Order | None,
    new: Order,
    *,
    by: str,
    register: str = "",
    event: str = "",
    detail: dict[str, Any] | None = None,
    callback_to: str = "",
    notices: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    now: datetime,
) -> None:
    """Store ``new`` (was ``old``) with everything that must commit with it. A state change is audited as
    ``order_<state>`` and reported to the channel; ``event`` audits a change within a state (a pick)."""
    put(txn, store, "orders", text(new.id), new)
    if old is None:
        txn.put(
            joined(text(new.channel), text(new.external_id)), text(new.id), db=store.db("orders_by_external")
        )
    if new.is_open:
        txn.put(text(new.id), b"", db=store.db("orders_open"))
    else:
        txn.delete(text(new.id), db=store.db("orders_open"))
    _reindex(txn, store, old, new)
    changed = old is None or old.state != new.state
    if changed or event:
        d = {"order": new.id, "channel": new.channel, **(detail or {})}
        if changed:
            d["from"] = old.state if old is not None else ""
            d["to"] = new.state
        audit.append(txn, store, event or f"order_{new.state}", staff=by, register=register, detail=d)
    if changed and callback_to:
        add_delivery(
            txn,
            store,
            "order_callbacks",
            route=new.channel,
            key=new.channel,
            kind=new.state,
            order_id=new.id,
            payload=b"",
            now=now,
            body=lambda seq: callback_body(seq, new, now),
        )
    for kind, route, to in notices:
        add_delivery(
            txn,
            store,
            "notices",
            route=route,
            key=new.id,
            kind=kind,
            order_id=new.id,
            payload=notice_text(kind, new).encode(),
            now=now,
            to=to,
            subject=notice_subject(kind, new),
        )


def add_delivery(
    txn: lmdb.Transaction,
    store: Store,
    table: str,
    *,
    route: str,
    key: str,
    kind: str,
    order_id: str,
    payload: bytes,
    now: datetime,
    to: str = "",
    subject: str = "",
    body: Any = None,
) -> Delivery:
    seq = next_seq(txn, store, table)
    entry = Delivery(
        seq=seq,
        route=route,
        key=key,
        kind=kind,
        order_id=order_id,
        payload=body(seq) if body is not None else payload,
        created_at=now,
        next_attempt_at=now,
        to=to,
        subject=subject,
    )
    put(txn, store, table, u64(seq), entry)
    return entry


def callback_body(seq: int, o: Order, now: datetime) -> bytes:
    return json.dumps(
        {
            "event_id": seq,
            "order_id": o.id,
            "external_id": o.external_id,
            "status": o.state,
            "at": now.isoformat(),
            "promised_at": o.promised_at.isoformat(),
            "lines": [
                {
                    "line": ln.line_id,
                    "product_id": ln.product_id,
                    "quantity": ln.quantity,
                    "picked": ln.picked,
                    "short": ln.short,
                    "substitute_for": ln.substitute_for,
                }
                for ln in o.lines
            ],
        },
        separators=(",", ":"),
    ).encode()


def notice_subject(kind: str, o: Order) -> str:
    return {
        "accepted": f"Order {o.id} accepted",
        "substitution": f"Order {o.id}: an item was substituted",
        "ready": f"Order {o.id} is ready for {o.fulfilment}",
        "cancelled": f"Order {o.id} was {o.state}",
    }.get(kind, f"Order {o.id}")


def notice_text(kind: str, o: Order) -> str:
    first = o.customer.name.split()[0] if o.customer.name else "there"
    if kind == "accepted":
        return f"Hi {first}, we have your order {o.id} and are holding it for you."
    if kind == "ready":
        how = "Come to the counter" if o.fulfilment == "pickup" else "Park in a curbside spot and text us"
        return f"Hi {first}, order {o.id} is ready. {how}; bring your ID."
    if kind == "substitution":
        names = []
        for ln in o.lines:
            was = o.line(ln.substitute_for) if ln.substitute_for else None
            if was is not None:
                names.append(f"{was.product_name} -> {ln.product_name}")
        return f"Hi {first}, something in order {o.id} ran out; we substituted: {', '.join(names)}."
    return f"Hi {first}, order {o.id} was {o.state}. Nothing was charged."


def notices_for(o: Order, kind: str, email_on: bool, sms_on: bool) -> list[tuple[str, str, str]]:
    out = []
    if email_on and o.customer.email:
        out.append((kind, "email", o.customer.email))
    if sms_on and o.customer.phone:
        out.append((kind, "sms", o.customer.phone))
    return out


def deliveries(store: Store, table: str, *, unsent_only: bool = True, limit: int = 0) -> list[Delivery]:
    with store.read() as txn:
        low = DELIVERY_LOW.get(txn, store, table)
        start = 0 if low is None or not unsent_only else low
        out = []
        with txn.cursor(db=store.db(table)) as cur:
            if cur.set_range(u64(start)):
                for _, v in cur:
                    e = decode(v, Delivery)
                    if not unsent_only or e.state == "pending":
                        out.append(e)
        return out[-limit:] if limit else out


def save_delivery(txn: lmdb.Transaction, store: Store, table: str, entry: Delivery) -> None:
    put(txn, store, table, u64(entry.seq), entry)
    # the low-water mark: nothing below it is pending, so a pass reads only the tail
    low_n = DELIVERY_LOW.get(txn, store, table) or 0
    with txn.cursor(db=store.db(table)) as cur:
        n = low_n
        if cur.set_range(u64(low_n)):
            for k, v in cur:
                if decode(v, Delivery).state == "pending":
                    break
                n = int.from_bytes(bytes(k), "big") + 1
                if n - low_n > 1000:
                    break
    if n != low_n:
        DELIVERY_LOW.put(txn, store, table, n)
