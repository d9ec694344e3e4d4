"""Back-office REST: what the manager's pages read. Every route needs a manager's session token (the one the
back-office browser got from its WebSocket login); changes go through the live protocol, not here."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec
import trio

from hub import audit
from hub.auth import StaffMember
from hub.backoffice import cash_flags, counts, readiness, records
from hub.backoffice.drawers import drawer_row
from hub.domain.eod import build_eod_report, render_csv, render_html, render_json
from hub.errors import BadRequest, NotFound
from hub.http_server import HttpRequest, HttpResponse, RouteTable, query_int, require_staff
from hub.sale.view import receipt_html

if TYPE_CHECKING:
    from hub.app import Hub

# the REST routes this module serves; hub/wiring.py joins it into the hub's table
ROUTES = RouteTable()


def _q(req: HttpRequest) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(req.query).items()}


def _today(hub: Hub) -> date:
    return datetime.now(UTC).astimezone(hub.config.zone).date()


def _date(hub: Hub, q: dict[str, str]) -> date:
    raw = q.get("date", "")
    if not raw:
        return _today(hub)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest("The date is written YYYY-MM-DD.", field="date") from None


@ROUTES.route("GET", "/api/backoffice/drawers")
async def list_drawers(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    day = _date(hub, _q(req))
    zone = hub.config.zone
    rows = [
        drawer_row(d)
        for d in records.drawers(hub.store)
        if d.opening.at.astimezone(zone).date() == day or d.status != "closed"
    ]
    rows.sort(key=lambda r: (r["register_id"], r["opened_at"]))
    registers = [r.id for r in hub.config.registers if not cash_flags.is_office(r.id)]
    return HttpResponse.json({"date": day.isoformat(), "registers": registers, "drawers": rows})


@ROUTES.route("GET", "/api/backoffice/readiness")
async def get_readiness(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    r = readiness.readiness(
        hub.store,
        hub.config,
        now=datetime.now(UTC),
        device_health=hub.services.device_health,
        state_health=hub.services.state_health,
        extra=hub.services.readiness_checks,
    )
    return HttpResponse.json(r)


@ROUTES.route("GET", "/api/reports/eod")
async def eod(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    q = _q(req)
    day = _date(hub, q)
    fmt = q.get("format", "json")
    register = q.get("register", "")
    reports = records.day_reports(hub.store, day, hub.config.store.time_zone, now=datetime.now(UTC))
    if register:
        report = next((r for r in reports.registers if r.scope == register), None)
        if report is None:
            report = build_eod_report(
                day,
                hub.config.store.time_zone,
                sales=(),
                generated_at=datetime.now(UTC),
                register_id=register,
            )
    else:
        report = reports.store
    name = f"z-report-{day.isoformat()}-{register or 'store'}"
    if fmt == "html":
        return HttpResponse(200, render_html(report, hub.config.store.name), "text/html; charset=utf-8")
    if fmt == "csv":
        return HttpResponse(
            200,
            render_csv(report),
            "text/csv; charset=utf-8",
            {"content-disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt != "json":
        raise BadRequest("format is html, csv or json.", field="format")
    body = render_json(reports if not register and q.get("all") else report)
    return HttpResponse(200, body, "application/json")


@ROUTES.route("GET", "/api/reports/variance")
async def variance(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    days = query_int(req, "days", 30, 1, 366) or 30
    points = records.variance_by_day(hub.store, hub.config.zone, today=_today(hub), days=days)
    return HttpResponse.json({"days": points})


@ROUTES.route("GET", "/api/backoffice/counts")
async def list_counts(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "technician")
    rows = sorted(counts.all_counts(hub.store), key=lambda c: c.started_at, reverse=True)
    return HttpResponse.json({"counts": [counts.count_dict(c) for c in rows[:100]]})


@ROUTES.route("GET", "/api/backoffice/cash-flags")
async def list_flags(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    flags = cash_flags.current_flags(hub.store, hub.config.zone, datetime.now(UTC))
    return HttpResponse.json({"flags": [cash_flags.flag_row(f) for f in flags]})


@ROUTES.route("GET", "/api/backoffice/incidents")
async def list_incidents(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    rows = records.incidents(hub.store)
    rows.sort(key=lambda r: r.get("seq", 0), reverse=True)
    if _q(req).get("format") == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["number", "at_utc", "register", "staff", "category", "description"])
        for r in sorted(rows, key=lambda r: r.get("seq", 0)):
            at = r.get("at")
            w.writerow(
                [
                    r.get("seq"),
                    at.isoformat() if isinstance(at, datetime) else at,
                    r.get("register", ""),
                    r.get("staff", ""),
                    r.get("category", ""),
                    _csv_safe(str(r.get("description", ""))),
                ]
            )
        return HttpResponse(
            200,
            out.getvalue(),
            "text/csv; charset=utf-8",
            {"content-disposition": 'attachment; filename="incidents.csv"'},
        )
    return HttpResponse.json({"incidents": rows})


def _csv_safe(value: str) -> str:
    # a cell starting with = + - @ is a formula to a spreadsheet (CSV injection): quote it as text
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


@ROUTES.route("GET", "/api/backoffice/audit")
async def audit_log(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    before = query_int(req, "before", None, 0, 2**63 - 1)
    limit = query_int(req, "limit", 100, 1, 500) or 100
    return HttpResponse.json({"entries": records.audit_page(hub.store, before=before, limit=limit)})


@ROUTES.route("POST", "/api/backoffice/audit/verify")
async def audit_verify(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    # walking the whole chain hashes every entry: off the trio thread
    n, brk = await trio.to_thread.run_sync(audit.verify, hub.store)
    return HttpResponse.json(
        {
            "ok": brk is None,
            "entries": n,
            "problem": None if brk is None else brk.problem,
            "seq": None if brk is None else brk.seq,
            "sentence": f"The audit chain of {n} entries is intact."
            if brk is None
            else f"The audit chain is broken: {brk.problem}.",
        }
    )


@ROUTES.route("GET", "/api/backoffice/devices")
async def devices(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    sup = hub.supervisor
    actors = (
        []
        if sup is None
        else [
            {"name": name, "running": c.running, "restarts": getattr(c, "restarts", 0)}
            for name, c in sorted(sup.children.items())
        ]
    )
    regs = [
        {
            "id": r.id,
            "name": r.config.name or r.id,
            "connected": r.connected > 0,
            "staff": r.session.staff_id if r.session else None,
        }
        for r in hub.registers.values()
    ]
    return HttpResponse.json(
        {
            "devices": sorted(hub.services.device_health.values(), key=lambda d: d.id),
            "registers": regs,
            "actors": actors,
        }
    )


@ROUTES.route("GET", "/api/backoffice/staff")
async def staff(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    with hub.store.read() as txn:
        members = [
            msgspec.msgpack.decode(v, type=StaffMember) for _, v in txn.cursor(db=hub.store.db("staff"))
        ]
    return HttpResponse.json(
        {
            "staff": [
                {
                    "id": m.id,
                    "name": m.name,
                    "role": m.role,
                    "active": m.active,
                    "locked_until": m.locked_until.isoformat() if m.locked_until else None,
                }
                for m in members
            ],
            "registers": [{"id": r.id, "name": r.name or r.id} for r in hub.config.registers],
        }
    )


@ROUTES.route("GET", "/api/backoffice/returns")
async def returned(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    return HttpResponse.json({"returned_stock": records.returned_stock(hub.store)})


@ROUTES.route("GET", "/api/backoffice/receipt")
async def receipt(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")

    number = query_int(req, "number", None, 1, 10**12)
    if number is None:
        raise BadRequest("number is the receipt number.", field="number")
    page = receipt_html(hub, number)
    if page is None:
        raise NotFound(f"There is no sale {number}.")
    return HttpResponse(200, page, "text/html; charset=utf-8")


__all__: list[Any] = []
