"""Live-protocol commands of online orders: the picker's (queue, claim, pick, short, substitute, ready) and
the register's (recall a ready order into the cart for pickup)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from hub.live.frames import Command

OrderId = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
LineId = Annotated[int, msgspec.Meta(ge=1, le=1000)]


class AcceptOrder(Command, tag="accept_order"):
    order_id: OrderId


class CancelOrder(Command, tag="cancel_order"):
    order_id: OrderId
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ClaimOrder(Command, tag="claim_order"):
    order_id: OrderId


class ReleaseOrder(Command, tag="release_order"):
    order_id: OrderId


class PickScan(Command, tag="pick_scan"):
    """A package tag scanned into the order held by this handheld (a bulk line takes the stable weight of
    the picking station's scale)."""

    order_id: OrderId
    data: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class ShortLine(Command, tag="short_line"):
    order_id: OrderId
    line: LineId


class Substitute(Command, tag="substitute"):
    """Staff confirm a substitution (the customer agreed, or their preference allows it)."""

    order_id: OrderId
    line: LineId
    product_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class OrderReady(Command, tag="order_ready"):
    order_id: OrderId


class RecallOrder(Command, tag="recall_order"):
    """Load a ready order's picked packages into this register's cart for pickup or curbside."""

    order_id: OrderId
