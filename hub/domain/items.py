"""What the law measures about a product: the attributes purchase limits are computed from.

Shared by the catalogue (products carry them), the cart, and the limits engine. Integer units only:
milligrams of product, milligrams of concentrate, milligrams of THC, microlitres of volume.
"""

from __future__ import annotations

import msgspec


class LimitAttributes(msgspec.Struct, frozen=True, kw_only=True):
    """Per-unit limit attributes of one product (one package unit, or one gram for bulk see below).

    For bulk (by-weight) products the cart builds one LimitAttributes per weighed line with
    ``net_weight_mg`` equal to the weight sold, ``units`` = 1.
    """

    category: str  # flower, pre-roll, infused-pre-roll, concentrate, vape, edible, beverage, tincture,
    # capsule, topical, plant, seed, clone, accessory
    net_weight_mg: int = 0
    concentrate_mg: int = 0
    thc_mg: int = 0
    volume_ul: int = 0
    units: int = 1
