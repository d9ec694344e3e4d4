"""Inventory counts as pure decisions: a spot check or a full count, compared with the local record and the
state's, and the variances as proposed adjustments with a state reason code.

A count session freezes what the hub believed each package held when counting began (``expected``), so a sale
made while staff count does not turn into a phantom variance: the comparison is counted vs. expected minus
what was sold from the package since (``sold_since``). Sessions are kept for the auditors (ND 33-44-01-20:
inventories attested by two people; CA 4 CCR 15051: reconcile at least every 30 days).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

import msgspec

from hub.domain.catalog import Package, Refusal

CountKind = Literal["spot", "full"]
CountStatus = Literal["counting", "finished", "approved"]

# Metrc adjustment reasons a count may end in (the names Metrc lists for a retailer; BioTrack maps them in
# hub.domain.state_payloads.BIOTRACK_ADJUST_TYPE). The first is proposed for a counted-unit variance.
COUNT_REASONS: tuple[str, ...] = (
    "Incorrect Quantity",
    "Scale Variance",
    "Theft",
    "Damage",
    "Entry Error",
    "Waste (Unusable Product)",
    "Drying",
)
# A weighed package may drift by moisture and scale tolerance; within 2 % it is a scale variance, beyond
# that someone must look (the proposal says "Incorrect Quantity" and the manager picks the reason).
SCALE_VARIANCE_BP = 200


class CountLine(msgspec.Struct, frozen=True, kw_only=True):
    tag: str
    product_id: str
    unit: Literal["each", "mg"]
    expected: int  # the local record when counting began
    counted: int | None = None  # None until scanned and counted
    counted_by: str = ""
    counted_at: datetime | None = None
    state_quantity: int | None = None  # the state system's figure, when the hub knows it
    sold_since: int = 0  # taken out by sales after the count began (set when the count finishes)


class Proposal(msgspec.Struct, frozen=True, kw_only=True):
    tag: str
    product_id: str
    unit: Literal["each", "mg"]
    local: int  # what the record says now
    counted: int
    delta: int  # counted − local (negative = missing)
    reason: str
    state_quantity: int | None = None
    note: str = ""
    approved_by: str = ""
    approved_at: datetime | None = None
    outbox_seq: int = 0


class CountSession(msgspec.Struct, frozen=True, kw_only=True):
    count_id: str
    kind: CountKind
    started_by: str
    started_at: datetime
    scope: str  # "tags", "batch:<b>", "product:<p>", "all"
    lines: tuple[CountLine, ...]
    status: CountStatus = "counting"
    witness: str = ""
    finished_at: datetime | None = None
    finished_by: str = ""
    proposals: tuple[Proposal, ...] = ()
    unscanned: tuple[str, ...] = ()
    unknown_scans: tuple[str, ...] = ()  # tags scanned that the hub does not hold

    def line(self, tag: str) -> CountLine | None:
        return next((ln for ln in self.lines if ln.tag == tag), None)


def _unit(pkg: Package, weighed: bool) -> Literal["each", "mg"]:
    return "mg" if weighed else "each"


def start_count(
    count_id: str,
    kind: CountKind,
    packages: Iterable[tuple[Package, bool]],
    *,
    by: str,
    at: datetime,
    scope: str,
    state_quantities: Mapping[str, int] | None = None,
) -> CountSession | Refusal:
    """``packages``: (package, sold by weight) for every package in scope. A full count takes every package
    that is on the shelf or should be (active, on hold, quarantined with stock)."""
    lines = []
    seen: set[str] = set()
    for pkg, weighed in packages:
        if pkg.tag in seen:
            continue
        seen.add(pkg.tag)
        lines.append(
            CountLine(
                tag=pkg.tag,
                product_id=pkg.product_id,
                unit=_unit(pkg, weighed),
                expected=pkg.quantity,
                state_quantity=(state_quantities or {}).get(pkg.tag),
            )
        )
    if not lines:
        return Refusal(code="nothing_to_count", message="No package matches what you chose to count.")
    return CountSession(
        count_id=count_id,
        kind=kind,
        started_by=by,
        started_at=at,
        scope=scope,
        lines=tuple(sorted(lines, key=lambda ln: ln.tag)),
    )


def record_count(
    session: CountSession, tag: str, counted: int, *, by: str, at: datetime
) -> CountSession | Refusal:
    """Record what was found on the shelf. Counting a package again replaces the figure (a recount)."""
    if session.status != "counting":
        return Refusal(code="count_closed", message="This count is finished; start a new one.")
    if counted < 0:
        return Refusal(code="bad_count", message="A count cannot be below zero.")
    line = session.line(tag)
    if line is None:
        if session.kind == "full":
            # a package on the shelf that the hub does not know is itself a finding for the auditors
            if tag in session.unknown_scans:
                return session
            return msgspec.structs.replace(session, unknown_scans=(*session.unknown_scans, tag))
        return Refusal(code="not_in_count", message=f"Package {tag} is not part of this spot check.")
    new = msgspec.structs.replace(line, counted=counted, counted_by=by, counted_at=at)
    return msgspec.structs.replace(session, lines=tuple(new if ln.tag == tag else ln for ln in session.lines))


def proposed_reason(line: CountLine, delta: int) -> str:
    if line.unit == "mg" and line.expected and abs(delta) * 10_000 <= line.expected * SCALE_VARIANCE_BP:
        return "Scale Variance"
    return "Incorrect Quantity"


def finish_count(
    session: CountSession,
    current: Mapping[str, int],
    *,
    by: str,
    at: datetime,
    sold_since: Mapping[str, int] | None = None,
) -> CountSession | Refusal:
    """Close the count: every counted line whose figure differs from the local record becomes a proposed
    adjustment. ``current`` is each package's quantity in the local record now. A spot check needs every
    chosen package counted; a full count lists what was not scanned (found nowhere: missing unless found).
    ``sold_since``: what sales took from each package after the count began."""
    if session.status != "counting":
        return Refusal(code="count_closed", message="This count is already finished.")
    uncounted = tuple(ln.tag for ln in session.lines if ln.counted is None)
    if session.kind == "spot" and uncounted:
        return Refusal(
            code="count_incomplete",
            message=f"Count every package of the spot check first ({len(uncounted)} left: {', '.join(uncounted[:5])}).",
        )
    sold = sold_since or {}
    lines = tuple(msgspec.structs.replace(ln, sold_since=sold.get(ln.tag, 0)) for ln in session.lines)
    proposals = []
    for ln in lines:
        if ln.counted is None:
            continue
        local = current.get(ln.tag, ln.expected - ln.sold_since)
        # what the shelf should hold now = the record at the start minus what was sold since; the
        # adjustment moves the record from what it says now to what is really there now
        should = ln.expected - ln.sold_since
        delta = ln.counted - should
        if delta == 0:
            continue
        proposals.append(
            Proposal(
                tag=ln.tag,
                product_id=ln.product_id,
                unit=ln.unit,
                local=local,
                counted=local + delta,
                delta=delta,
                reason=proposed_reason(ln, delta),
                state_quantity=ln.state_quantity,
            )
        )
    return msgspec.structs.replace(
        session,
        lines=lines,
        status="finished",
        finished_at=at,
        finished_by=by,
        proposals=tuple(proposals),
        unscanned=uncounted,
    )


def approve(
    session: CountSession,
    tags: Iterable[str],
    *,
    manager_id: str,
    at: datetime,
    reasons: Mapping[str, str] | None = None,
    note: str = "",
) -> tuple[CountSession, list[Proposal]] | Refusal:
    """A manager approves proposals (all when ``tags`` is empty); each then goes to the state's outbox."""
    if session.status == "counting":
        return Refusal(code="count_open", message="Finish the count before approving adjustments.")
    wanted = set(tags) or {p.tag for p in session.proposals if not p.approved_by}
    by_tag = {p.tag: p for p in session.proposals}
    chosen: list[Proposal] = []
    for tag in sorted(wanted):
        p = by_tag.get(tag)
        if p is None:
            return Refusal(code="no_proposal", message=f"There is no proposed adjustment for {tag}.")
        if p.approved_by:
            return Refusal(code="already_approved", message=f"The adjustment of {tag} is already approved.")
        reason = (reasons or {}).get(tag, p.reason)
        if reason not in COUNT_REASONS:
            return Refusal(code="bad_reason", message=f"{reason!r} is not a state adjustment reason.")
        if p.local + p.delta < 0:
            return Refusal(code="below_zero", message=f"{tag} cannot be adjusted below zero.")
        chosen.append(
            msgspec.structs.replace(
                p, reason=reason, note=note.strip(), approved_by=manager_id, approved_at=at
            )
        )
    if not chosen:
        return Refusal(code="nothing_to_approve", message="No adjustment is waiting for approval.")
    done = {p.tag: p for p in chosen}
    proposals = tuple(done.get(p.tag, p) for p in session.proposals)
    status: CountStatus = "approved" if all(p.approved_by for p in proposals) else session.status
    return msgspec.structs.replace(session, proposals=proposals, status=status), chosen
