"""REST for the back office (managers): the state channel's status, the dead-letter list and its retry,
incoming manifests and receiving, reconciliation and adjustments. JSON in, JSON out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from drivers.state_errors import StateError, StateRejected
from hub.domain.outbox import OutboxEntry, overdue
from hub.errors import BadRequest, HubError, NotFound
from hub.http_server import HttpRequest, HttpResponse, RouteTable, require_staff
from hub.state_channel import outbox_store as box
from hub.state_channel import pulls
from hub.state_channel.feature import StateChannel, channel_of

if TYPE_CHECKING:
    from hub.app import Hub

# the REST routes this module serves; hub/wiring.py joins it into the hub's table
ROUTES = RouteTable()


def entry_json(e: OutboxEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "kind": e.kind,
        "licence": e.licence,
        "key": e.idempotency_key,
        "packages": list(e.package_labels),
        "state": e.state,
        "attempts": e.attempts,
        "created_at": e.created_at.isoformat(),
        "next_attempt_at": e.next_attempt_at.isoformat(),
        "error": e.last_error,
        "error_code": e.last_error_code,
        "state_ref": e.state_ref,
    }


Label = Annotated[str, msgspec.Meta(max_length=128)]
Note = Annotated[str, msgspec.Meta(max_length=500)]
SEQ_DIGITS = 18  # a path's number fits the store's u64 keys (never a 500 for 2^64)


class ReceivedLine(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One manifest line as received (the receiving page's body); bounded before pulls.receive sees it."""

    label: Label = ""
    status: Annotated[str, msgspec.Meta(max_length=20)] = "received"
    received_quantity: Annotated[float, msgspec.Meta(ge=0, le=1e9)] | None = None
    reason: Note = ""
    product_id: Annotated[str, msgspec.Meta(max_length=64)] = ""


class ReceiveBody(msgspec.Struct, kw_only=True):
    lines: Annotated[list[ReceivedLine], msgspec.Meta(max_length=5000)] = []


class AdjustBody(msgspec.Struct, kw_only=True):
    label: Label = ""
    reason: Annotated[str, msgspec.Meta(max_length=120)] = ""
    note: Note = ""


def _tail(req: HttpRequest, prefix: str) -> list[str]:
    return [p for p in req.path[len(prefix) :].split("/") if p]


@ROUTES.route("GET", "/api/state/status")
async def status(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    ch = channel_of(hub.services)
    entries = box.unsent(hub.store, ch.licence)
    now = datetime.now(UTC)
    return HttpResponse.json(
        {
            "licence": ch.licence,
            "facility": ch.facility,
            "system": ch.system,
            "reporting": {
                "mode": ch.reporting.mode,
                "deadline_seconds": ch.reporting.deadline.total_seconds(),
                "sell_while_down": ch.reporting.sell_while_down,
                "source": ch.reporting.source,
            },
            "actor": ch.actor.status() if ch.actor else None,
            "unsent": len(entries),
            "overdue": sum(1 for e in entries if overdue(e, now, ch.reporting.deadline)),
            "dead_letters": sum(1 for e in entries if e.state == "dead"),
            "last_pull_error": ch.last_pull_error,
        }
    )


@ROUTES.route("GET", "/api/state/dead-letter")
async def dead_letter(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    return HttpResponse.json([entry_json(e) for e in box.dead_letters(hub.store)])


@ROUTES.route("POST", "/api/state/dead-letter/*")
async def dead_letter_retry(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "manager")
    parts = _tail(req, "/api/state/dead-letter/")
    if (
        len(parts) != 2
        or parts[1] != "retry"
        or not (parts[0].isascii() and parts[0].isdigit())
        or len(parts[0]) > SEQ_DIGITS
    ):
        raise NotFound("Use POST /api/state/dead-letter/{seq}/retry.")
    again = await hub.writer.write(
        box.retry(hub.store, int(parts[0]), datetime.now(UTC), session.staff_id), label="dead-letter"
    )  # the entry is back in the outbox: its sender wakes when this commits (box.retry marks it)
    return HttpResponse.json(entry_json(again))


@ROUTES.route("GET", "/api/state/outbox")
async def outbox(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    ch = channel_of(hub.services)
    return HttpResponse.json([entry_json(e) for e in box.unsent(hub.store, ch.licence)])


# ---- manifests and receiving ----


# receiving a delivery is a technician's job (issue 5); adjusting the state's records is a manager's


@ROUTES.route("GET", "/api/state/manifests")
async def manifests(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "technician")
    ch = channel_of(hub.services)
    if "refresh=0" not in req.query and ch.reader is not None:
        await pulls.pull_manifests(hub, ch)
    return HttpResponse.json(pulls.manifests(hub.store))


@ROUTES.route("GET", "/api/state/manifests/*")
async def manifest_report(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "technician")
    parts = _tail(req, "/api/state/manifests/")
    m = pulls.manifest(hub.store, parts[0]) if parts else None
    if m is None:
        raise NotFound("No such manifest.")
    if len(parts) > 1 and parts[1] == "report":
        return HttpResponse(200, pulls.report_text(m))
    return HttpResponse.json(m)


@ROUTES.route("POST", "/api/state/manifests/*")
async def manifest_receive(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "technician")
    parts = _tail(req, "/api/state/manifests/")
    if len(parts) != 2 or parts[1] != "receive":
        raise NotFound("Use POST /api/state/manifests/{manifest}/receive.")
    scans: list[dict[str, Any]] = msgspec.to_builtins(req.decode(ReceiveBody).lines)
    ch = channel_of(hub.services)
    number = parts[0]
    if getattr(ch.reader, "receives_transfers", False):
        report = await _receive_through_state(hub, ch, number, scans, session.staff_id)
    else:
        report = await hub.writer.write(
            pulls.receive(hub.store, number, scans, session.staff_id, metrc=ch.system == "metrc"),
            label="receive",
        )
    return HttpResponse.json(report)


async def _receive_through_state(
    hub: Hub, ch: StateChannel, number: str, scans: list[dict[str, Any]], staff: str
) -> pulls.ReceivingReport:
    """BioTrack 2024 receives a transfer through its API (issue 5 item 4). The count is checked first,
    then the state takes it, then the store commits it; nothing is committed if the state refuses. A
    repeat after any failure converges: the state answers "already received" and the store commits."""

    with hub.store.read() as txn:
        m, lines = pulls.plan_receipt(txn, hub.store, number, scans)
    try:
        how = await ch.reader.receive_transfer(m.transfer_id, pulls.biotrack_receive_items(lines))
    except StateRejected as exc:
        raise HubError(f"BioTrack refused the receipt: {exc.message}", code="state_rejected") from exc
    except StateError as exc:
        raise HubError(
            f"BioTrack could not be reached ({exc.message}); nothing was received. Try again.",
            code="state_unavailable",
        ) from exc
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    note = "already recorded there" if how == "already" else f"{when} UTC"
    report: pulls.ReceivingReport = await hub.writer.write(
        pulls.receive(
            hub.store,
            number,
            scans,
            staff,
            metrc=False,
            state_steps=[f"Received in BioTrack through its API (transfer {m.transfer_id}, {note})."],
            state_received=True,
        ),
        label="receive",
    )
    try:  # the state's own figures, so the page can say whether they agree with ours
        await pulls.pull_manifests(hub, ch)
    except StateError as exc:
        ch.last_pull_error = str(exc)
    return report


# ---- reconciliation ----


@ROUTES.route("GET", "/api/state/adjust-reasons")
async def adjust_reasons(hub: Hub, req: HttpRequest) -> HttpResponse:
    """The state's own list of adjustment reasons (Metrc), for the manager's reason picker."""
    require_staff(hub, req, "manager")
    ch = channel_of(hub.services)
    reader = ch.reader
    if reader is None or not hasattr(reader, "adjust_reasons"):
        return HttpResponse.json([])
    reasons = await reader.adjust_reasons()
    return HttpResponse.json([{"name": r.name, "requires_note": bool(r.requires_note)} for r in reasons])


@ROUTES.route("POST", "/api/state/reconciliations")
async def reconcile_now(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "manager")
    ch = channel_of(hub.services)
    if ch.reader is None:
        raise BadRequest("No state system to reconcile with.")
    rec = await pulls.reconcile(hub, ch, trigger="manual", by=session.staff_id)
    return HttpResponse.json(rec)


@ROUTES.route("GET", "/api/state/reconciliations")
async def reconciliations(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    return HttpResponse.json(pulls.reconciliations(hub.store))


@ROUTES.route("POST", "/api/state/reconciliations/*")
async def adjust(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "manager")
    parts = _tail(req, "/api/state/reconciliations/")
    if (
        len(parts) != 2
        or parts[1] != "adjust"
        or not (parts[0].isascii() and parts[0].isdigit())
        or len(parts[0]) > SEQ_DIGITS
    ):
        raise NotFound("Use POST /api/state/reconciliations/{id}/adjust.")
    body = req.decode(AdjustBody)
    ch = channel_of(hub.services)
    result = await hub.writer.write(
        pulls.adjust_from_discrepancy(
            hub.store,
            ch,
            int(parts[0]),
            body.label,
            body.reason,
            body.note,
            session.staff_id,
        ),
        label="adjustment",
    )  # its outbox entry (outbox_store.add) wakes the sender when this commits
    return HttpResponse.json(result)
