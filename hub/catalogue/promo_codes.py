"""A promo code at the register: the customer gives a code, the cart carries it, and the promotions that
ask for it apply (``hub.domain.promotions.eligible``). An unknown code is refused with a sentence."""

from __future__ import annotations

from typing import Any

import msgspec

from hub.catalogue.protocol import ApplyPromoCode, RemovePromoCode
from hub.commands import Request, handles
from hub.sale import service


@handles(ApplyPromoCode)
async def apply_promo_code(req: Request, msg: ApplyPromoCode) -> Any:
    live = req.hub.services.catalogue
    assert live is not None  # wired with the catalogue, whose commands these are
    actor = req.hub.registers[req.register_id]
    sale = service.sale_of(actor)
    code = msg.code.strip().upper()
    if not live.knows_code(code):
        raise service.Refused(f"No promotion has the code {code!r}.", code="unknown_promo_code")
    cart = service._cart(sale, req.register_id)
    if code not in cart.promo_codes:
        sale.cart = msgspec.structs.replace(
            cart, promo_codes=(*cart.promo_codes, code), version=cart.version + 1
        )
    service._notice(sale, "info", f"Promo code {code} applied.")
    return await service._save(req, sale, reply={"code": code})


@handles(RemovePromoCode)
async def remove_promo_code(req: Request, msg: RemovePromoCode) -> Any:
    actor = req.hub.registers[req.register_id]
    sale = service.sale_of(actor)
    code = msg.code.strip().upper()
    if sale.cart is not None and code in sale.cart.promo_codes:
        cart = sale.cart
        sale.cart = msgspec.structs.replace(
            cart, promo_codes=tuple(c for c in cart.promo_codes if c != code), version=cart.version + 1
        )
    return await service._save(req, sale, reply={"removed": code})
