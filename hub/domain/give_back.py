"""Money the hub still owes back at a terminal or a provider: a void under way, a card reversal pending.

Plain records (no I/O): hub/sale/void.py and hub/sale/reversals.py keep them in the store's
``void_intents`` and ``pending_reversals`` tables (hub/store/layout.py).
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class VoidIntent(msgspec.Struct, kw_only=True):
    """A void whose payments are being given back, cleared by the void's own commit: one left behind
    names a sale whose card may be voided while the sale is active."""

    receipt_number: int
    references: tuple[str, ...]
    started_at: datetime
    staff: str
    register: str


class PendingReversal(msgspec.Struct, kw_only=True):
    """A card charge to void at its terminal, retried until the terminal confirms it."""

    reference: str
    device_id: str
    amount_cents: int
    reason: str
    created_at: datetime
    register: str = ""
    attempts: int = 0
