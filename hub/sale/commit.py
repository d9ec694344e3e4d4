"""The sale's writer: reads inside the sale's transaction, asks the core for the plan, applies it as it is.

The plan is hub/domain/sale_plan.py.
"""

from __future__ import annotations

from datetime import datetime

import lmdb
import msgspec

from hub import audit
from hub.domain.cart import Cart
from hub.domain.catalog import Customer, Package, Product
from hub.domain.drawer import DrawerSession
from hub.domain.ledger import LedgerEntry
from hub.domain.pricing import PricedCart
from hub.domain.receipt import Receipt
from hub.domain.sale_plan import Buyer, SaleReads, SaleRefused, plan_sale, taking
from hub.domain.tender import Settlement
from hub.errors import Conflict
from hub.orders import stock as order_stock
from hub.sale import inventory as inv
from hub.sale.context import CheckedIn, Refused, SaleContext
from hub.sale.drawer import open_drawer_id, put_drawer
from hub.sale.view import check_limits
from hub.state_channel import outbox_store
from hub.store.env import encode, put, tget
from hub.store.keys import joined, micros, text, u64
from hub.store.layout import LEDGER

RECEIPT_SEQ = b"receipt_seq"


def _reads(
    txn: lmdb.Transaction,
    ctx: SaleContext,
    register_id: str,
    cart: Cart,
    customer: CheckedIn,
    now: datetime,
    order_id: str,
) -> SaleReads:
    """What the plan decides on, as the store holds it inside this transaction (the units an online order
    holds are free for the cart that picks that order up)."""
    store = ctx.store
    today = ctx.today(now)
    takes = taking(cart)
    packages: dict[str, Package | None] = {tag: inv.package_in_txn(txn, store, tag) for tag in takes}
    products: dict[str, Product | None] = {}
    for pkg in packages.values():
        if pkg is not None and pkg.product_id not in products:
            products[pkg.product_id] = inv.product_in_txn(txn, store, pkg.product_id)
    found = {tag: pkg for tag, pkg in packages.items() if pkg is not None}
    held = order_stock.taking_refusal_in_txn(
        txn,
        store,
        found,
        {tag: qty for tag, qty in takes.items() if tag in found},
        today,
        except_order=order_id,
    )
    drawer_id = open_drawer_id(txn, store, register_id)
    raw = txn.get(RECEIPT_SEQ, db=store.db("meta"))
    # with the customers feature installed, its in-sale hook books loyalty instead
    known = None if ctx.in_sale_txn else tget(txn, store, "customers", text(customer.customer_id), Customer)
    return SaleReads(
        packages=packages,
        products=products,
        held=held,
        limits=check_limits(ctx, txn, customer, cart, now, fresh=True),
        drawer_id=drawer_id,
        drawer=tget(txn, store, "drawers", text(drawer_id), DrawerSession) if drawer_id else None,
        last_receipt_number=int.from_bytes(raw, "big") if raw is not None else 0,
        loyalty_points=known.loyalty_points if known is not None else None,
    )


def commit_sale(
    txn: lmdb.Transaction,
    ctx: SaleContext,
    *,
    register_id: str,
    staff: str,
    cashier: str,
    cart: Cart,
    customer: CheckedIn,
    priced: PricedCart,
    settlement: Settlement,
    now: datetime,
    order_id: str = "",
) -> Receipt:
    """The sale as one transaction: the plan re-checks stock and allotment; everything or nothing."""
    store = ctx.store
    reads = _reads(txn, ctx, register_id, cart, customer, now, order_id)
    plan = plan_sale(
        cart=cart,
        buyer=Buyer(
            customer_id=customer.customer_id,
            customer_type=customer.customer_type,
            registration_number=customer.registration_number,
        ),
        priced=priced,
        settlement=settlement,
        reads=reads,
        jurisdiction=ctx.jurisdiction,
        store=ctx.store_identity,
        licence=ctx.config.store.licence,
        time_zone=ctx.config.store.time_zone,
        register_id=register_id,
        staff=staff,
        cashier=cashier,
        now=now,
        today=ctx.today(now),
    )
    if isinstance(plan, SaleRefused):
        r = plan.refusal
        raise Conflict(r.message, code=r.code) if plan.stock_changed else Refused(r.message, code=r.code)
    number = plan.receipt_number
    txn.put(RECEIPT_SEQ, number.to_bytes(8, "big"), db=store.db("meta"))
    put(txn, store, "sales", u64(number), plan.record)
    txn.put(joined(plan.day.isoformat().encode(), u64(number)), b"", db=store.db("sales_by_day"))
    for pkg in plan.packages:  # read above in this transaction: only quantity and status change
        inv.update_package(txn, store, pkg)
    entry = LedgerEntry(receipt_number=number, at=now, items=list(plan.ledger_items))
    LEDGER.put(txn, store, (customer.customer_id, micros(now), number), entry)  # the limits caches follow
    outbox_store.add(  # the state's sender wakes when this commits
        txn,
        store,
        kind="sale",
        licence=ctx.config.store.licence,
        key=plan.state_sale.external_receipt_number,
        payload=encode(plan.state_sale),
        labels=plan.outbox_labels,
        now=now,
    )
    if plan.drawer is not None:
        put_drawer(txn, store, plan.drawer)
    for hook in ctx.in_sale_txn:
        hook(txn, ctx, receipt=plan.receipt, customer=customer, priced=priced, staff=staff, now=now)
    if plan.loyalty_points is not None:
        known = tget(txn, store, "customers", text(customer.customer_id), Customer)
        assert known is not None
        inv.update_customer(txn, store, msgspec.structs.replace(known, loyalty_points=plan.loyalty_points))
    audit.append(txn, store, "sale", staff=staff, register=register_id, detail=plan.audit_detail)
    return plan.receipt
