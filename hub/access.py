"""Who may run a command, without I/O: staff roles and sessions, handler specs and tables, the access check."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from hub.errors import Forbidden, NotAuthenticated

if TYPE_CHECKING:
    from hub.commands import Request
    from hub.live.frames import Command

Role = Literal["budtender", "technician", "manager", "admin"]
ROLE_RANK: dict[str, int] = {"budtender": 1, "technician": 2, "manager": 3, "admin": 4}
Scope = Literal["connection", "register"]
Handler = Callable[["Request", Any], Awaitable[Any]]


class StaffSession(msgspec.Struct, kw_only=True):
    """Who is logged in at a register; resumable after a reconnect until idle too long."""

    staff_id: str
    name: str
    role: Role
    register_id: str
    token_hash: bytes
    last_seen: datetime


class EnrolledDevice(msgspec.Struct, kw_only=True):
    """A register's browser enrolled with a pairing code (its device token is kept as a hash)."""

    register_id: str
    name: str
    enrolled_at: datetime
    enrolled_by: str
    revoked: bool = False


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class HandlerSpec:
    fn: Handler
    scope: Scope
    login: bool
    role: str | None
    idempotent: bool  # store the reply of committed effects and answer retries from it
    # how long the connection waits for the register actor's answer (pay waits for the card terminal)
    timeout_s: float = 60.0


class HandlerTable:
    """The commands one feature module answers, and their specs. A module declares its table
    (``HANDLERS = HandlerTable()`` with ``@HANDLERS.handles(Scan)``); hub/wiring.py joins the tables of
    the features a hub runs, so a command of a feature not wired has no handler (``unsupported``)."""

    def __init__(self, specs: dict[type[Command], HandlerSpec] | None = None) -> None:
        self._specs: dict[type[Command], HandlerSpec] = dict(specs or {})

    def handles(
        self,
        cls: type[Command],
        *,
        scope: Scope = "register",
        login: bool = True,
        role: str | None = None,
        idempotent: bool = True,
        timeout_s: float = 60.0,
    ) -> Callable[[Handler], Handler]:
        """``scope="connection"``: the handler runs on the connection, beside the register actor rather
        than behind it (``cancel_payment`` must reach the terminal while ``pay`` waits for the card)."""

        def add(fn: Handler) -> Handler:
            if cls in self._specs:
                raise ValueError(f"{cls.__name__} has two handlers")
            self._specs[cls] = HandlerSpec(
                fn=fn, scope=scope, login=login, role=role, idempotent=idempotent, timeout_s=timeout_s
            )
            return fn

        return add

    @classmethod
    def join(cls, *tables: HandlerTable) -> HandlerTable:
        """One table from several; a command answered by two of them is a wiring mistake."""
        joined = cls()
        for table in tables:
            for command, spec in table.items():
                if command in joined:
                    raise ValueError(f"{command.__name__} has two handlers")
                joined.replace(command, spec)
        return joined

    def get(self, cls: type[Command]) -> HandlerSpec | None:
        return self._specs.get(cls)

    def __getitem__(self, cls: type[Command]) -> HandlerSpec:
        return self._specs[cls]

    def __contains__(self, cls: object) -> bool:
        return cls in self._specs

    def __iter__(self) -> Iterator[type[Command]]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def items(self) -> Iterator[tuple[type[Command], HandlerSpec]]:
        return iter(self._specs.items())

    def values(self) -> Iterator[HandlerSpec]:
        return iter(self._specs.values())

    def replace(self, cls: type[Command], spec: HandlerSpec) -> None:
        """Swap one command's handler (tests inject a failing handler into a running hub)."""
        self._specs[cls] = spec


def check_access(spec: HandlerSpec, session: StaffSession | None, what: str) -> None:
    if spec.login and session is None:
        raise NotAuthenticated("Log in with your staff ID and PIN first.", code="not_logged_in")
    if spec.role is not None:
        role = session.role if session else ""
        if ROLE_RANK.get(role, 0) < ROLE_RANK[spec.role]:
            raise Forbidden(f"{what} needs a {spec.role} or above.")


def require_role(role: str, needed: str, what: str) -> None:
    if ROLE_RANK.get(role, 0) < ROLE_RANK[needed]:
        raise Forbidden(f"{what} needs a {needed} or above.")
