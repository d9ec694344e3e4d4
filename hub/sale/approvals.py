"""A second person at the register: a manager's audited approval, a witness's or incoming cashier's PIN."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub import audit, auth
from hub.access import ROLE_RANK
from hub.commands import Request
from hub.domain.cart import ManagerOverride
from hub.errors import Forbidden, HubError
from hub.sale import protocol as p

if TYPE_CHECKING:
    pass


async def approve(
    req: Request, a: p.ManagerApproval, what: str, *, detail: dict[str, Any] | None = None
) -> ManagerOverride:
    """Check a manager's ID and PIN at the register (the shared lockout); audit the override; return its
    reference."""
    hub = req.hub
    now = datetime.now(UTC)
    try:
        member = await auth.authenticate(
            hub, a.manager, a.pin, register_id=req.register_id, purpose="approval", acting=req.staff_id
        )
        if ROLE_RANK[member.role] < ROLE_RANK["manager"]:
            raise Forbidden(
                "The manager ID or PIN is not right, or that person is not a manager.",
                code="approval_refused",
            )
    except HubError:
        await hub.writer.write(
            lambda txn: audit.append(
                txn,
                hub.store,
                "override_refused",
                staff=req.staff_id,
                register=req.register_id,
                detail={"what": what, "manager": a.manager},
            )
        )
        raise
    entry = await hub.writer.write(
        lambda txn: audit.append(
            txn,
            hub.store,
            "override",
            staff=req.staff_id,
            register=req.register_id,
            detail={"what": what, "manager": member.id, "reason": a.reason, **(detail or {})},
        )
    )
    return ManagerOverride(manager_id=member.id, reason=a.reason, reference=f"audit:{entry.seq}", at=now)


async def staff_by_pin(req: Request, staff_id: str, pin: str, who: str) -> auth.StaffMember:
    """A second person confirms with their own PIN (witness, incoming cashier): the shared lockout, every
    attempt audited; a locked account is refused even with the right PIN."""
    purpose: auth.PinPurpose = "incoming" if who == "incoming" else "witness"
    return await auth.authenticate(
        req.hub, staff_id, pin, register_id=req.register_id, purpose=purpose, acting=req.staff_id
    )
