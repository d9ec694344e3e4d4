"""The back office as a feature of the hub: the back-office register's snapshot carries the open-flag count."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.backoffice import cash_flags

if TYPE_CHECKING:
    from actors.register import RegisterActor


def office_snapshot(actor: RegisterActor) -> dict[str, Any]:
    """The back-office browser hears of new cash flags without polling."""

    if not cash_flags.is_office(actor.id):
        return {}
    stored = cash_flags.stored_flags(actor.parts.store)
    return {"office": {"open_cash_flags": sum(1 for s in stored.values() if s.open)}}
