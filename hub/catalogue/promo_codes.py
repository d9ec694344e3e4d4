"""A promo code at the register: the customer gives a code, the cart carries it, and the promotions that
ask for it apply (``hub.domain.promotions.eligible``). An unknown code is refused with a sentence."""

from __future__ import annotations

from typing import Any

import msgspec

from hub.access import HandlerTable
from hub.catalogue.protocol import ApplyPromoCode, RemovePromoCode
from hub.commands import Request
from hub.sale.context import Refused, cart_of, notice, sale_of, save

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


@HANDLERS.handles(ApplyPromoCode)
async def apply_promo_code(req: Request, msg: ApplyPromoCode) -> Any:
    live = req.hub.services.catalogue
    assert live is not None  # wired with the catalogue, whose commands these are
    actor = req.hub.registers[req.register_id]
    sale = sale_of(actor)
    code = msg.code.strip().upper()
    if not live.knows_code(code):
        raise Refused(f"No promotion has the code {code!r}.", code="unknown_promo_code")
    cart = cart_of(sale, req.register_id)
    if code not in cart.promo_codes:
        sale.cart = msgspec.structs.replace(
            cart, promo_codes=(*cart.promo_codes, code), version=cart.version + 1
        )
    notice(sale, "info", f"Promo code {code} applied.")
    return await save(req, sale, reply={"code": code})


@HANDLERS.handles(RemovePromoCode)
async def remove_promo_code(req: Request, msg: RemovePromoCode) -> Any:
    actor = req.hub.registers[req.register_id]
    sale = sale_of(actor)
    code = msg.code.strip().upper()
    if sale.cart is not None and code in sale.cart.promo_codes:
        cart = sale.cart
        sale.cart = msgspec.structs.replace(
            cart, promo_codes=tuple(c for c in cart.promo_codes if c != code), version=cart.version + 1
        )
    return await save(req, sale, reply={"removed": code})
