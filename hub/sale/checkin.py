"""Checking a customer in: a scanned or typed ID, customer type and registration, the state's registry.

Also ending the customer's visit at the register.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec
import trio

from drivers.state_errors import StateError
from hub import audit
from hub.access import HandlerTable
from hub.commands import Request
from hub.domain import aamva, identity
from hub.domain.limits.engine import state_remaining_from_ounces
from hub.sale import inventory as inv
from hub.sale import protocol as p
from hub.sale.context import (
    CheckedIn,
    Refused,
    RegisterSale,
    SaleContext,
    actor_of,
    ctx_of,
    notice,
    sale_of,
    sale_writer,
    save,
)

if TYPE_CHECKING:
    from hub.services import Services

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


def check_in_licence(
    ctx: SaleContext,
    lic: aamva.DriverLicence,
    customer_type: str,
    *,
    registration: identity.MedicalRegistration | None = None,
    manual_reason: str = "",
    registry: identity.RegistryAnswer | None = None,
) -> CheckedIn:
    now = datetime.now(UTC)
    decision = identity.check_in(
        lic,
        jurisdiction=ctx.jurisdiction,
        customer_type=customer_type,
        now=now,
        registration=registration,
        registry=registry,
    )
    hashed = inv.id_hash(ctx.id_key, lic.jurisdiction, lic.document_number)
    known = inv.customer_by_hash(ctx.store, hashed)
    cls_label = (
        ctx.jurisdiction.class_label(decision.customer_class) if decision.customer_class else customer_type
    )
    label = f"{cls_label}, {decision.age}"
    if known is not None and known.display_name:
        label = f"{known.display_name} ({label})"
    return CheckedIn(
        customer_id=known.id if known is not None else hashed[:24],
        id_hash=hashed,
        customer_type=customer_type,
        customer_class=decision.customer_class,
        age=decision.age,
        resident=decision.resident,
        id_jurisdiction=lic.jurisdiction,
        birth_date=lic.date_of_birth,
        id_expiry=lic.expiry,
        label=label,
        allowed=decision.allowed,
        reasons=[r.message for r in decision.refusals],
        warnings=list(decision.warnings),
        registration_number=registration.number if registration else "",
        registration_expiry=registration.expires if registration else None,
        loyalty_points=known.loyalty_points if known is not None else 0,
        manual_reason=manual_reason,
        checked_in_at=now,
        family_name=lic.family_name,
    )


async def apply_check_in(
    req: Request, sale: RegisterSale, checked: CheckedIn, how: str, kind: str = "id"
) -> dict[str, Any]:
    sale.customer = checked
    if sale.cart is not None:
        sale.cart = msgspec.structs.replace(sale.cart, customer_id=checked.customer_id)
    if checked.allowed:
        notice(sale, "info", f"Checked in: {checked.label}.")
    else:
        notice(sale, "error", "Refused: " + "; ".join(checked.reasons))
    store = req.store
    write_sale = sale_writer(sale, store)
    detail = {
        "how": how,
        "allowed": checked.allowed,
        "class": checked.customer_class or "",
        "reasons": checked.reasons,
        "manual_reason": checked.manual_reason,
    }
    result = {"kind": kind, "allowed": checked.allowed, "reasons": checked.reasons, "label": checked.label}

    def fn(txn: lmdb.Transaction) -> Any:
        write_sale(txn)
        # who was checked in is kept as the keyed hash only (no name, no ID number)
        audit.append(
            txn,
            store,
            "check_in" if checked.allowed else "check_in_refused",
            staff=req.staff_id,
            register=req.register_id,
            detail={**detail, "customer": checked.customer_id},
        )
        return result

    out = await req.commit(fn, label="check_in")
    actor_of(req).publish()
    return out  # type: ignore[no-any-return]


def _typed_licence(number: str, birth: date, expiry: date, jurisdiction: str) -> aamva.DriverLicence:
    """What the check-in core needs of an ID that was not scanned (typed by staff, or already checked)."""
    return aamva.DriverLicence(
        document_type="ID",
        document_number=number,
        family_name="",
        given_name="",
        date_of_birth=birth,
        expiry=expiry,
        jurisdiction=jurisdiction,
        iin="",
        aamva_version=0,
        country="USA",
    )


@HANDLERS.handles(p.CheckInManual)
async def check_in_manual(req: Request, msg: p.CheckInManual) -> Any:
    ctx, sale = ctx_of(req.services), sale_of(actor_of(req))
    lic = _typed_licence(msg.id_number, msg.birth_date, msg.id_expiry, msg.id_jurisdiction)
    checked = check_in_licence(ctx, lic, "adult", manual_reason=msg.reason)
    return await apply_check_in(req, sale, checked, "manual")


@HANDLERS.handles(p.SetCustomerType)
async def set_customer_type(req: Request, msg: p.SetCustomerType) -> Any:
    ctx, sale = ctx_of(req.services), sale_of(actor_of(req))
    c = sale.customer
    if c is None:
        raise Refused("Scan the customer's ID first.", code="no_customer")
    lic = _typed_licence("-", c.birth_date, c.id_expiry, c.id_jurisdiction)
    reg = None
    if msg.customer_type != "adult":
        reg = identity.MedicalRegistration(
            number=msg.registration_number,
            jurisdiction=ctx.jurisdiction.code,
            expires=msg.registration_expiry,
        )
    registry, state_remaining = None, None
    # only where the state keeps a registry (Metrc patient status, BioTrack card lookup)
    if reg is not None and reg.number and ctx.jurisdiction.check_in.registry == "state-registry":
        registry, state_remaining = await registry_lookup(req.services, ctx, reg.number)
    checked = check_in_licence(
        ctx, lic, msg.customer_type, registration=reg, manual_reason=c.manual_reason, registry=registry
    )
    checked = msgspec.structs.replace(
        checked,
        state_remaining=state_remaining if checked.allowed else None,
        registry_status=registry.status if registry else "",
        customer_id=c.customer_id,
        id_hash=c.id_hash,
        loyalty_points=c.loyalty_points,
        # a consenting customer was greeted by name at the ID scan: keep the name, change the class
        label=f"{c.label.split(' (')[0]} ({checked.label})" if " (" in c.label else checked.label,
    )
    return await apply_check_in(req, sale, checked, f"type:{msg.customer_type}")


REGISTRY_TIMEOUT = 3.0  # the counter never waits longer than this on the state's registry


async def registry_lookup(
    services: Services, ctx: SaleContext, number: str
) -> tuple[identity.RegistryAnswer | None, dict[str, int] | None]:
    """Ask the state's registry about a medical registration (Metrc patient status, cached a minute by
    the client). Unreachable is an answer too: the jurisdiction's policy decides what that allows."""
    ch = services.state_channel
    reader = getattr(ch, "reader", None)
    if reader is None or not hasattr(reader, "patient_status"):
        return None, None
    try:
        with trio.fail_after(REGISTRY_TIMEOUT):
            st = await reader.patient_status(number)
    except (trio.TooSlowError, StateError, OSError):
        return identity.RegistryAnswer(status="unreachable"), None
    if st is None:
        return identity.RegistryAnswer(status="not-found"), None
    if not st.active:
        return identity.RegistryAnswer(status="inactive"), None
    return identity.RegistryAnswer(status="active"), state_remaining_from_ounces(
        ctx.jurisdiction, st.flower_ounces_available, st.thc_ounces_available
    )


@HANDLERS.handles(p.EndCustomer)
async def end_customer(req: Request, msg: p.EndCustomer) -> Any:
    sale = sale_of(actor_of(req))
    sale.customer = None
    sale.cart = None
    sale.order_id = ""  # a recalled online order stays ready for its pickup
    notice(sale, "info", "Ready for the next customer.")
    return await save(req, sale, reply={})
