"""The hub's own error vocabulary: a stable ``code`` the UI can act on and a sentence a person reads."""

from __future__ import annotations


class HubError(Exception):
    """A refusal or failure the caller should see as ``error`` with ``code`` and ``message``."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field


class BadRequest(HubError):
    code = "bad_request"


class NotAuthenticated(HubError):
    code = "not_logged_in"


class Forbidden(HubError):
    code = "forbidden"


class LockedOut(HubError):
    code = "locked_out"


class NotFound(HubError):
    code = "not_found"


class Conflict(HubError):
    code = "conflict"


class StoreUnavailable(HubError):
    code = "store_unavailable"


class StorageError(StoreUnavailable):
    """The store could not write: the disk is full, the map cannot grow, or the disk failed. Nothing of
    the request was kept; the hub keeps running and writes again once space returns."""

    code = "storage_error"


class NoStore(Exception):
    """There is no store at the path a command was given (a mistyped --data must not make a new one)."""
