"""Live-protocol commands of the back office and of closing a drawer at a register.

Drawer commands act on this register's drawer, or, from the back office, on the register named in
``register_id``. Cash leaving or entering a drawer outside a sale needs a manager's ID and PIN
(``approval``), as the drawer core says (``hub.domain.drawer.NEEDS_MANAGER``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from hub.live.frames import Command, Pin, StaffId
from hub.sale.protocol import ManagerApproval

Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=300)]
RegisterRef = Annotated[str, msgspec.Meta(max_length=40)]
Pieces = Annotated[
    dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=8)],
        Annotated[int, msgspec.Meta(ge=0, le=100_000)],
    ],
    msgspec.Meta(max_length=32),
]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class OfficeOpenDrawer(Command, tag="office_open_drawer"):
    """Open a register's drawer from the back office: the logged-in manager counts, a witness enters a PIN."""

    register_id: RegisterRef
    counted: Pieces
    witness: StaffId
    witness_pin: Pin


class DrawerMovement(Command, tag="drawer_movement"):
    """A drop to the safe, a paid-out, a paid-in or an adjustment (signed cents) against the open drawer."""

    kind: Literal["drop", "paid_out", "paid_in", "adjustment"]
    amount_cents: Annotated[int, msgspec.Meta(ge=-10_000_000, le=10_000_000)]
    reason: Reason
    approval: ManagerApproval
    bag_number: Annotated[str, msgspec.Meta(max_length=40)] = ""
    register_id: RegisterRef = ""


class BlindCount(Command, tag="blind_count"):
    """The closing count by denomination, made without seeing the expected figure. The reply is the first
    time expected, counted and variance are shown."""

    counted: Pieces
    register_id: RegisterRef = ""
    witness: Annotated[str, msgspec.Meta(max_length=40)] = ""


class SignOffDrawer(Command, tag="sign_off_drawer"):
    """A manager accepts a counted drawer's variance with a note (their PIN, unless logged in as manager)."""

    session_id: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    note: Reason
    approval: ManagerApproval | None = None


class RecordDeposit(Command, tag="record_deposit"):
    session_id: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    bag_number: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    amount_cents: Annotated[int, msgspec.Meta(gt=0, le=100_000_000)]
    witness: Annotated[str, msgspec.Meta(max_length=40)] = ""


class HandOverDrawer(Command, tag="hand_over_drawer"):
    """Shift change: the outgoing person counts blind, the incoming person witnesses with their PIN and
    takes the drawer over with that count as the float."""

    counted: Pieces
    incoming: StaffId
    incoming_pin: Pin
    register_id: RegisterRef = ""


class StartCount(Command, tag="start_count"):
    """A spot check (chosen packages, a batch or a product) or a full count (every package on hand)."""

    kind: Literal["spot", "full"]
    tags: Annotated[list[Tag], msgspec.Meta(max_length=500)] = []
    batch: Annotated[str, msgspec.Meta(max_length=80)] = ""
    product_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    witness: Annotated[str, msgspec.Meta(max_length=40)] = ""


class CountPackage(Command, tag="count_package"):
    """What was found of one package: units, or milligrams for a package sold by weight."""

    count_id: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    tag: Tag
    counted: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]


class FinishCount(Command, tag="finish_count"):
    count_id: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]


class ApproveAdjustments(Command, tag="approve_adjustments"):
    """A manager approves proposed adjustments (all open ones when ``tags`` is empty) into the outbox."""

    count_id: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    tags: Annotated[list[Tag], msgspec.Meta(max_length=500)] = []
    reasons: Annotated[
        dict[Tag, Annotated[str, msgspec.Meta(max_length=300)]], msgspec.Meta(max_length=500)
    ] = {}
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


class ReviewCashFlag(Command, tag="review_cash_flag"):
    flag_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    decision: Literal["file_8300", "filed_8300", "no_action", "escalated"]
    note: Reason


__all__ = ["ManagerApproval", "StaffId"]
