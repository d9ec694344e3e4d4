"""One vocabulary of state track-and-trace errors (Metrc, BioTrack).

The clients turn every foreign failure (httpx exceptions, HTTP statuses, BioTrack's ``success: 0``) into one
of these, each with a human sentence and a stable ``code``. The outbox decides from the class alone:

- ``StateUnavailable``: nothing reached the state (refused connection, outage 503, timeout before the request
  was sent), or a read that can simply be repeated. Retry later; no lookup needed.
- ``OutcomeUnknown``: a write left this machine and no answer came back (timeout while waiting, connection
  dropped, a 5xx that may have followed the store). Before resending, ask the state whether it has it.
- ``StateRejected``: the state refused the content (HTTP 400 row errors). A person must fix it; dead-letter.
- ``StateAuthError``: keys wrong, expired or lacking permission. A person must fix it; stop sending.
- ``RateLimited``: HTTP 429; wait ``retry_after`` seconds.
- ``StateProtocolError``: the state answered, but not in a shape we can read (a required field missing, a
  value of the wrong type). It names the endpoint and the field; like an outage, the channel waits for it.
"""

from __future__ import annotations

import msgspec


class RowError(msgspec.Struct, frozen=True):
    """One Metrc validation message: ``{"row": i, "message": …}``; ``row`` indexes the request array."""

    row: int
    message: str


class StateError(Exception):
    code = "state_error"

    def __init__(self, message: str, *, system: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.system = system

    def __str__(self) -> str:
        return f"{self.system}: {self.message}" if self.system else self.message


class StateUnavailable(StateError):
    code = "state_unavailable"


class OutcomeUnknown(StateError):
    code = "state_outcome_unknown"


class StateRejected(StateError):
    code = "state_rejected"

    def __init__(self, message: str, row_errors: list[RowError] | None = None, *, system: str = "") -> None:
        super().__init__(message, system=system)
        self.row_errors = list(row_errors or [])

    def for_row(self, row: int) -> list[RowError]:
        """The messages about one entry of a batched request."""
        return [e for e in self.row_errors if e.row == row]


class StateAuthError(StateError):
    code = "state_auth"


class RateLimited(StateError):
    code = "state_rate_limited"

    def __init__(self, message: str, retry_after: float, *, system: str = "") -> None:
        super().__init__(message, system=system)
        self.retry_after = retry_after


class StateProtocolError(StateUnavailable):
    """An answer the client cannot read: it names the endpoint and the field, so a person can compare it
    with the vendor's documentation. Nothing is assumed to have happened because of it."""

    code = "state_protocol"

    def __init__(self, message: str, *, endpoint: str = "", field: str = "", system: str = "") -> None:
        super().__init__(message, system=system)
        self.endpoint = endpoint
        self.field = field
