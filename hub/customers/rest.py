"""Customer REST, for the register (a budtender's session) and the back office (a manager's).

    POST /api/customers/licence      {licence}            what enrolment would take from a scanned ID
                                                          (no licence: the one just scanned at this register)
    POST /api/customers/enrol        {licence, phone, email, consent_profile, consent_marketing,
                                      consent_sms, customer_type, groups, note}
    POST /api/customers/find         {phone | name | licence}
    GET  /api/customers/{id}                              the profile; history and medical data for managers
    POST /api/customers/{id}         {phone, email, consents, groups, note, reason}
    POST /api/customers/{id}/sms     {text}               only with SMS consent
    POST /api/customers/merge        {keep, duplicate, reason}       manager
    POST /api/customers/purge        {}                   manager: the retention purge now
    GET  /api/customers/consent-texts                     the words the customer is shown
    GET  /api/crm/status                                  manager: the CRM bridge's backlog

The licence payload is parsed here and dropped: only its keyed hash and what the customer agreed to keep
are stored. Nothing personal is written to the audit log or the process log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import msgspec

from hub.access import ROLE_RANK
from hub.crm import outbox_store as crm_store
from hub.customers import records
from hub.customers.service import Customers
from hub.domain import customers as core
from hub.domain.catalog import Customer, Refusal
from hub.errors import BadRequest, NotFound
from hub.http_server import HttpRequest, HttpResponse, RouteTable, require_staff

if TYPE_CHECKING:
    from hub.app import Hub

# the REST routes this module serves; hub/wiring.py joins it into the hub's table
ROUTES = RouteTable()


def customers_of(hub: Hub) -> Customers:
    c = hub.services.customers
    if c is None:
        raise NotFound("This hub has no customer records.")
    return c


def _str(body: dict[str, Any], key: str, limit: int = 300) -> str:
    v = body.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str) or len(v) > limit:
        raise BadRequest(f"{key} is text of at most {limit} characters.", field=key)
    return v


def _is_manager(session: Any) -> bool:
    return ROLE_RANK.get(session.role, 0) >= ROLE_RANK["manager"]


def view(hub: Hub, c: Customer, session: Any, *, history: bool = True) -> dict[str, Any]:
    manager = _is_manager(session)
    out = core.public_view(c, medical_allowed=manager)
    if history:
        rows = records.history(hub.store, c.id)
        if not manager:  # a budtender sees visits, not what a patient was dispensed
            rows = [{k: v for k, v in r.items() if k not in ("lines",)} for r in rows[:10]]
        out["history"] = rows
        out["loyalty_ledger"] = [msgspec.to_builtins(e) for e in records.loyalty_entries(hub.store, c.id, 50)]
    return out


@ROUTES.route("GET", "/api/customers/consent-texts")
async def consent_texts(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "budtender")
    return HttpResponse.json({"texts": core.CONSENT_TEXTS, "groups": list(core.GROUPS)})


def _facts(hub: Hub, session: Any, body: dict[str, Any]) -> core.LicenceFacts:
    """The licence pasted or scanned into the form, else the one just scanned at this register."""
    cs = customers_of(hub)
    raw = _str(body, "licence", 4000)
    if raw.strip():
        return cs.licence_facts(raw)
    facts = cs.scanned_at(session.register_id)
    if facts is None:
        raise BadRequest("Scan the customer's licence first.", field="licence")
    return facts


@ROUTES.route("POST", "/api/customers/licence")
async def licence_prefill(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "budtender")
    facts = _facts(hub, session, req.json_object())
    known = records.by_id_hash(hub.store, facts.id_hash)
    return HttpResponse.json(
        {
            "given_name": core.title(facts.given_name),
            "family_name": core.title(facts.family_name),
            "birth_date": facts.birth_date.isoformat(),
            "expires_on": facts.expires_on.isoformat() if facts.expires_on else None,
            "jurisdiction": facts.jurisdiction,
            "known": view(hub, known, session, history=False)
            if known is not None and known.consent_to_retain
            else None,
        }
    )


@ROUTES.route("POST", "/api/customers/enrol")
async def enrol(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "budtender")
    cs = customers_of(hub)
    body = req.json_object()
    facts = _facts(hub, session, body)
    groups = body.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise BadRequest("groups is a list of names.", field="groups")
    form = core.EnrolForm(
        phone=_str(body, "phone", 40),
        email=_str(body, "email", 254),
        consent_profile=body.get("consent_profile") is True,
        consent_marketing=body.get("consent_marketing") is True,
        consent_sms=body.get("consent_sms") is True,
        groups=tuple(groups),
        note=_str(body, "note", 500),
    )
    customer_type = _str(body, "customer_type", 20) or "adult"
    if customer_type not in ("adult", "medical"):
        raise BadRequest("customer_type is adult or medical.", field="customer_type")
    where = "backoffice" if session.register_id.upper().startswith("OFFICE") else session.register_id
    c = await cs.enrol(facts, form, staff=session.staff_id, where=where, customer_type=customer_type)
    return HttpResponse.json({"customer": view(hub, c, session)})


@ROUTES.route("POST", "/api/customers/find")
async def find(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "budtender")
    cs = customers_of(hub)
    body = req.json_object()
    found: list[Customer] = []
    if body.get("phone"):
        p = core.normalize_phone(_str(body, "phone", 40))
        if isinstance(p, Refusal):
            raise BadRequest(p.message, field="phone")
        c = records.by_phone_hash(hub.store, core.phone_hash(cs.key, p))
        found = [c] if c is not None else []
    elif body.get("licence"):
        facts = cs.licence_facts(_str(body, "licence", 4000))
        c = records.by_id_hash(hub.store, facts.id_hash)
        found = [c] if c is not None else []
    elif body.get("name"):
        found = records.by_name(hub.store, _str(body, "name", 100))
    else:
        raise BadRequest("Find by phone, name or licence.", field="phone")
    # only records the customer agreed to keep are shown as profiles
    rows = [
        {
            "id": c.id,
            "name": " ".join(x for x in (c.display_name, c.family_name) if x),
            "points": c.loyalty_points,
            "birth_date": c.birth_date.isoformat(),
            "last_visit_at": c.last_visit_at.isoformat() if c.last_visit_at else None,
        }
        for c in found
        if c.consent_to_retain and not c.merged_into
    ]
    return HttpResponse.json({"customers": rows})


@ROUTES.route("GET", "/api/crm/status")
async def crm_status(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    cs = customers_of(hub)
    recent = [
        {
            "seq": e.seq,
            "kind": e.kind,
            "event": e.idempotency_key,
            "state": e.state,
            "attempts": e.attempts,
            "last_error": e.last_error,
            "created_at": e.created_at.isoformat(),
        }
        for e in crm_store.recent(hub.store, 50)
    ]
    return HttpResponse.json(
        {
            "configured": hub.config.crm is not None,
            "style": hub.config.crm.style if hub.config.crm else None,
            "status": cs.crm.status() if cs.crm is not None else None,
            "recent": recent,
            "last_purge": cs.last_purge,
        }
    )


@ROUTES.route("GET", "/api/customers/*")
async def profile(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "budtender")
    parts = [unquote(p) for p in req.path[len("/api/customers/") :].split("/") if p]
    c = records.resolve(hub.store, parts[0]) if parts else None
    if c is None or not c.consent_to_retain:
        raise NotFound("There is no such customer.")
    return HttpResponse.json({"customer": view(hub, c, session)})


@ROUTES.route("POST", "/api/customers/*")
async def change(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "budtender")
    cs = customers_of(hub)
    parts = [unquote(p) for p in req.path[len("/api/customers/") :].split("/") if p]
    body = req.json_object()
    if parts == ["merge"]:
        require_staff(hub, req, "manager")
        reason = _str(body, "reason")
        if len(reason.strip()) < 3:
            raise BadRequest("Say why the two records are the same person.", field="reason")
        c = await cs.merge(
            _str(body, "keep", 64), _str(body, "duplicate", 64), staff=session.staff_id, reason=reason
        )
        return HttpResponse.json({"customer": view(hub, c, session)})
    if parts == ["purge"]:
        require_staff(hub, req, "manager")
        return HttpResponse.json(await cs.purge(staff=session.staff_id, trigger="manual"))
    if len(parts) == 2 and parts[1] == "sms":
        text = _str(body, "text", 480).strip()
        if not text:
            raise BadRequest("The text of the message.", field="text")
        return HttpResponse.json(await cs.send_sms(parts[0], text, staff=session.staff_id))
    if len(parts) != 1:
        raise NotFound("No such customer action.")
    consents = body.get("consents")
    if consents is not None and (
        not isinstance(consents, dict) or not all(isinstance(v, bool) for v in consents.values())
    ):
        raise BadRequest("consents maps profile, marketing and sms to true or false.", field="consents")
    groups = body.get("groups")
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
        raise BadRequest("groups is a list of names.", field="groups")
    reason = _str(body, "reason") or "customer asked"
    where = "backoffice" if session.register_id.upper().startswith("OFFICE") else session.register_id
    c = await cs.update(
        parts[0],
        staff=session.staff_id,
        where=where,
        reason=reason,
        phone=body["phone"] if isinstance(body.get("phone"), str) else None,
        email=body["email"] if isinstance(body.get("email"), str) else None,
        consents=consents,
        groups=groups,
        note=_str(body, "note", 500),
    )
    return HttpResponse.json({"customer": view(hub, c, session)})
