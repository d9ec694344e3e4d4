"""Live-protocol commands of the catalogue at the register: promotion codes typed on a cart."""

from __future__ import annotations

from typing import Annotated

import msgspec

from hub.live.frames import Command


class ApplyPromoCode(Command, tag="apply_promo_code"):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class RemovePromoCode(Command, tag="remove_promo_code"):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
