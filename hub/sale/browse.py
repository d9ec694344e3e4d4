"""Browsing at the register before anything is typed: category tiles and the products in stock."""

from __future__ import annotations

from typing import Any

import trio

from hub.access import HandlerTable
from hub.commands import Request
from hub.domain.catalog import Product, format_quantity, sellability
from hub.sale import inventory as inv
from hub.sale import protocol as p
from hub.sale.cart import potency
from hub.sale.context import ctx_of

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()

CATEGORY_LABELS = {
    "flower": "Flower",
    "pre-roll": "Pre-rolls",
    "infused-pre-roll": "Infused pre-rolls",
    "vape": "Vapes",
    "concentrate": "Concentrates",
    "edible": "Edibles",
    "beverage": "Beverages",
    "tincture": "Tinctures",
    "capsule": "Capsules",
    "topical": "Topicals",
    "accessory": "Accessories",
}


def category_label(category: str) -> str:
    return CATEGORY_LABELS.get(category, category.replace("-", " ").capitalize())


def in_stock(req: Request) -> list[tuple[Product, int]]:
    """Active products with sellable stock today, by name."""
    today = ctx_of(req.hub).today()
    out = []
    for product in inv.all_products(req.hub.store):
        if not product.active:
            continue
        stock = sum(
            pk.quantity
            for pk in inv.packages_of(req.hub.store, product.id)
            if sellability(pk, product, today, 1) is None
        )
        if stock > 0:
            out.append((product, stock))
    out.sort(key=lambda ps: (ps[0].name.casefold(), ps[0].id))
    return out


@HANDLERS.handles(p.Browse, idempotent=False)
async def browse(req: Request, msg: p.Browse) -> Any:
    stocked = await trio.to_thread.run_sync(in_stock, req)
    counts: dict[str, int] = {}
    for product, _ in stocked:
        counts[product.category] = counts.get(product.category, 0) + 1
    chosen = [ps for ps in stocked if msg.category is None or ps[0].category == msg.category]
    return {
        "categories": [
            {"category": c, "label": category_label(c), "count": n} for c, n in sorted(counts.items())
        ],
        "category": msg.category,
        "products": [
            {
                "id": product.id,
                "name": product.name,
                "brand": product.brand,
                "category": product.category,
                "strain": product.strain,
                "price_cents": product.price_cents,
                "sold_by": product.sold_by,
                "stock_text": format_quantity(product, stock),
                "thc_text": potency(product.thc_bp, product.thc_mg_per_unit),
                "cbd_text": potency(product.cbd_bp, product.cbd_mg_per_unit),
                "lab_testing": "passed",
                "coa_ref": product.coa_ref,
            }
            for product, stock in chosen[: msg.limit]
        ],
        "more": max(0, len(chosen) - msg.limit),
    }
