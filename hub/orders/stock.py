"""What the sale asks of online orders: may this register take these units, or are they held for an order?

Called by the register when a line enters the cart (an early, friendly refusal) and inside the sale commit's
transaction (the decision that counts: the writer serialises it against every pick and acceptance). A
product no open order holds costs one LMDB get.
"""

from __future__ import annotations

from datetime import date

import lmdb

from hub.domain.cart import Cart
from hub.domain.catalog import Package, Refusal
from hub.domain.orders import free_quantity, reservation_refusal
from hub.orders import store as ostore
from hub.store.env import Store, tget


def taking_refusal_in_txn(
    txn: lmdb.Transaction,
    store: Store,
    packages: dict[str, Package],
    taking: dict[str, int],
    today: date,
    *,
    except_order: str = "",
) -> Refusal | None:
    by_product: dict[str, list[str]] = {}
    for tag in taking:
        by_product.setdefault(packages[tag].product_id, []).append(tag)
    for product_id, tags in by_product.items():
        res = ostore.reservations_in_txn(txn, store, product_id)
        if res is None or not [o for o in res.orders if o != except_order]:
            continue
        product = ostore.inv_product(txn, store, product_id)
        if product is None:
            continue
        free = free_quantity(
            product, ostore.packages_in_txn(txn, store, product_id), res, today, except_order=except_order
        )
        total = sum(taking[t] for t in tags)
        for tag in tags:
            r = reservation_refusal(
                packages[tag],
                product,
                taking[tag],
                free - (total - taking[tag]),
                res,
                except_order=except_order,
            )
            if r is not None:
                return r
    return None


def holds(txn: lmdb.Transaction, store: Store, product_id: str, *, except_order: str = "") -> bool:
    """Whether an open order (other than ``except_order``) holds units of this product: one get, read in
    the register's own read of the package and product, so a cart change with nothing held costs no
    transaction of its own (``cart_refusal(..., held=False)``)."""
    res = ostore.reservations_in_txn(txn, store, product_id)
    return res is not None and any(o != except_order for o in res.orders)


def cart_refusal(
    store: Store,
    cart: Cart,
    line_id: int,
    today: date,
    *,
    except_order: str = "",
    held: bool | None = None,
) -> Refusal | None:
    """The line just added or changed must not take units an online order holds. ``held``: what
    :func:`holds` said of the line's product in the read the change was decided on (False: nothing to
    check; the commit checks again in its own transaction, serialised against every pick and acceptance,
    so an order accepted in between is never oversold); None: read it here."""
    if held is False:
        return None
    line = cart.line(line_id)
    if line is None:
        return None
    taking: dict[str, int] = {}
    for ln in cart.lines:
        if ln.product_id == line.product_id:
            taking[ln.package_tag] = taking.get(ln.package_tag, 0) + ln.package_quantity
    with store.read() as txn:
        # most products no open order holds: one get answers, before any package is read
        res = ostore.reservations_in_txn(txn, store, line.product_id)
        if res is None or not [o for o in res.orders if o != except_order]:
            return None
        packages = {}
        for tag in taking:
            pkg = tget(txn, store, "packages", tag.encode(), Package)
            if pkg is None:
                return None
            packages[tag] = pkg
        return taking_refusal_in_txn(txn, store, packages, taking, today, except_order=except_order)
