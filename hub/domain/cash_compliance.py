"""Cash-compliance flags: Form 8300 aggregation and structuring patterns, per customer.

Form 8300: a trade or business that receives more than $10,000 in cash in one transaction or in related
transactions must report it within 15 days; transactions within 24 hours are "related"
(compliance-and-market.md §1). So cash is summed per customer over every rolling 24-hour window.
Structuring: splitting cash to stay under a threshold; several cash sales each just under a threshold in
a short time are flagged for a manager to review.

Flags inform; they never block a lawful sale. Cash is aggregated per ``customer_id`` only: two customers
are never merged, and a sale without a customer (anonymous) cannot be related to any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from hub.domain.tender import cents

FORM_8300_THRESHOLD_CENTS = 1_000_000  # "more than $10,000": strictly greater


class CashEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Cash received from a customer in one sale (cash tendered minus change; cash refunds negative)."""

    customer_id: str
    at: datetime  # UTC
    cash_cents: int
    receipt_number: int
    register_id: str = ""


class CashPolicy(msgspec.Struct, frozen=True, kw_only=True):
    report_threshold_cents: int = FORM_8300_THRESHOLD_CENTS
    related_window: timedelta = timedelta(hours=24)
    # Amounts people structure under: the 8300 line and the $3,000 BSA record-keeping line for monetary
    # instruments (31 CFR 1010.415). A store may add its own (e.g. a daily cash-limit policy).
    structuring_thresholds_cents: tuple[int, ...] = (FORM_8300_THRESHOLD_CENTS, 300_000)
    near_below_bp: int = 1_000  # "just under" = within 10 % below the threshold
    structuring_min_sales: int = 3
    structuring_window: timedelta = timedelta(hours=24)


class CashFlag(msgspec.Struct, frozen=True, kw_only=True):
    flag_id: str  # stable across re-runs: kind, customer, first receipt of the window
    kind: Literal["form_8300", "structuring"]
    customer_id: str
    window_start: datetime
    window_end: datetime
    total_cents: int
    receipt_numbers: tuple[int, ...]
    threshold_cents: int
    sentence: str


class FlagReview(msgspec.Struct, frozen=True, kw_only=True):
    """A manager's review of a flag: kept with the flag (Form 8300 copies are kept 5 years)."""

    flag_id: str
    reviewed_by: str
    at: datetime
    decision: Literal["file_8300", "filed_8300", "no_action", "escalated"]
    note: str


def _by_customer(events: Iterable[CashEvent]) -> dict[str, list[CashEvent]]:
    out: dict[str, list[CashEvent]] = {}
    for e in events:
        if e.customer_id:  # anonymous cash cannot be related to anything
            out.setdefault(e.customer_id, []).append(e)
    for evs in out.values():
        evs.sort(key=lambda e: (e.at, e.receipt_number))
    return out


def _merge(flags: dict[str, CashFlag], flag: CashFlag) -> None:
    # A later window with the same first sale is the same episode, grown: keep the larger one.
    prev = flags.get(flag.flag_id)
    if prev is None or len(flag.receipt_numbers) > len(prev.receipt_numbers):
        flags[flag.flag_id] = flag


def assess(events: Iterable[CashEvent], policy: CashPolicy | None = None) -> list[CashFlag]:
    """Every flag the events raise, oldest first."""
    policy = policy or CashPolicy()
    flags: dict[str, CashFlag] = {}
    for customer, evs in _by_customer(events).items():
        # Form 8300: rolling window ending at each sale.
        start = 0
        running = 0
        for end, e in enumerate(evs):
            running += e.cash_cents
            while evs[start].at < e.at - policy.related_window:  # exactly 24 h apart still counts
                running -= evs[start].cash_cents
                start += 1
            if running > policy.report_threshold_cents:
                window = evs[start : end + 1]
                _merge(
                    flags,
                    CashFlag(
                        flag_id=f"form_8300:{customer}:{window[0].receipt_number}",
                        kind="form_8300",
                        customer_id=customer,
                        window_start=window[0].at,
                        window_end=e.at,
                        total_cents=running,
                        receipt_numbers=tuple(w.receipt_number for w in window),
                        threshold_cents=policy.report_threshold_cents,
                        sentence=(
                            f"Customer received {cents(running)} in cash within 24 hours "
                            f"({len(window)} sale{'s' if len(window) > 1 else ''}): over "
                            f"{cents(policy.report_threshold_cents)}, Form 8300 is due within 15 days."
                        ),
                    ),
                )
        # Structuring: several sales each just under a threshold within the window.
        for threshold in policy.structuring_thresholds_cents:
            floor = threshold - threshold * policy.near_below_bp // 10_000
            near = [e for e in evs if floor <= e.cash_cents < threshold]
            start = 0
            for end, e in enumerate(near):
                while near[start].at < e.at - policy.structuring_window:
                    start += 1
                window = near[start : end + 1]
                if len(window) >= policy.structuring_min_sales:
                    total = sum(w.cash_cents for w in window)
                    _merge(
                        flags,
                        CashFlag(
                            flag_id=f"structuring:{customer}:{threshold}:{window[0].receipt_number}",
                            kind="structuring",
                            customer_id=customer,
                            window_start=window[0].at,
                            window_end=e.at,
                            total_cents=total,
                            receipt_numbers=tuple(w.receipt_number for w in window),
                            threshold_cents=threshold,
                            sentence=(
                                f"{len(window)} cash sales each just under {cents(threshold)} within "
                                f"{_hours(policy.structuring_window)} ({cents(total)} in all): possible structuring, review."
                            ),
                        ),
                    )
    return sorted(flags.values(), key=lambda f: (f.window_end, f.flag_id))


def _hours(td: timedelta) -> str:
    h = int(td.total_seconds() // 3600)
    return f"{h} hour" + ("" if h == 1 else "s")


def flags_for_sale(
    history: Iterable[CashEvent], new: CashEvent, policy: CashPolicy | None = None
) -> list[CashFlag]:
    """The flags a new cash sale raises or grows, for the manager's notice at the register. Only this
    customer's history is looked at; the sale goes ahead whatever the answer."""
    if not new.customer_id:
        return []
    policy = policy or CashPolicy()
    window_from = new.at - max(policy.related_window, policy.structuring_window)
    mine = [e for e in history if e.customer_id == new.customer_id and window_from <= e.at <= new.at]
    return [f for f in assess([*mine, new], policy) if new.receipt_number in f.receipt_numbers]
