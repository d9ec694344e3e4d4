"""The purchase ledger's entry: one sale's items as the purchase-limit windows count them."""

from __future__ import annotations

from datetime import datetime

import msgspec

from hub.domain.limits.engine import LimitItem


class LedgerEntry(msgspec.Struct, kw_only=True):
    """Stored under (customer id, sold at, receipt number) in the ``ledger`` table (hub/store/layout.py).
    A voided sale stays, marked, so the history shows it and the windows skip it."""

    receipt_number: int
    at: datetime  # UTC
    items: list[LimitItem]
    voided: bool = False
    returned: bool = False
