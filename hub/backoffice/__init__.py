"""The back office and closing the day (issue 7): drawer movements, blind counts and sign-off, returns,
inventory counts, cash-compliance flags, readiness, Z reports, incidents, and the back-office pages.

hub/wiring.py wires it: command handlers and REST routes register on import; the after-sale hook feeds the
cash-flag watcher, which runs supervised; the back-office register's snapshot carries the open-flag count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.register import RegisterActor


def office_snapshot(actor: RegisterActor) -> dict[str, Any]:
    """The back-office browser hears of new cash flags without polling."""
    from hub.backoffice import cash_flags

    if not cash_flags.is_office(actor.id):
        return {}
    stored = cash_flags.stored_flags(actor.hub.store)
    return {"office": {"open_cash_flags": sum(1 for s in stored.values() if s.open)}}
