"""HTTP plumbing shared by the Metrc and BioTrack clients: one place where httpx's exceptions and HTTP
statuses become the state-error vocabulary, and the GET limiter Metrc's rate limits call for."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import trio

from drivers.state_errors import (
    OutcomeUnknown,
    RateLimited,
    RowError,
    StateAuthError,
    StateProtocolError,
    StateRejected,
    StateUnavailable,
)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)
DEFAULT_RETRY_AFTER = 1.0


class GetLimiter:
    """At most ``per_second`` GETs in any one-second window and ``concurrency`` in flight.

    Metrc: 50 GET/s and 10 concurrent per facility (writes are not limited). The clock is injectable
    so tests can run it under trio's mock clock.
    """

    def __init__(
        self, per_second: int = 50, concurrency: int = 10, clock: Callable[[], float] = trio.current_time
    ) -> None:
        self.per_second = per_second
        self._sem = trio.Semaphore(concurrency)
        self._stamps: deque[float] = deque()
        self._clock = clock
        self._lock = trio.Lock()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._sem:
            async with self._lock:  # one waiter at a time keeps the order fair
                while True:
                    now = self._clock()
                    while self._stamps and now - self._stamps[0] >= 1.0:
                        self._stamps.popleft()
                    if len(self._stamps) < self.per_second:
                        self._stamps.append(now)
                        break
                    await trio.sleep(self._stamps[0] + 1.0 - now)
            yield


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    system: str,
    params: dict[str, Any] | None = None,
    json: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: Any = None,
) -> httpx.Response:
    """Send one request; map transport failures to our errors. Does not judge the status code.

    A failure before the request left is ``StateUnavailable``. After it left, a read has no effect to
    wonder about (``StateUnavailable``), but a write might have been applied (``OutcomeUnknown``).
    """
    is_write = method.upper() not in ("GET", "HEAD")
    kwargs: dict[str, Any] = {"params": params, "headers": headers}
    if auth is not None:
        kwargs["auth"] = auth
    if content is not None:
        kwargs["content"] = content
    elif json is not None:
        kwargs["content"] = msgspec.json.encode(json)
        kwargs["headers"] = {"content-type": "application/json", **(headers or {})}
    try:
        return await http.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as exc:
        raise StateUnavailable(f"cannot reach the state system ({_describe(exc)})", system=system) from exc
    except httpx.RequestError as exc:
        # Read/write timeouts, a dropped connection, a truncated answer, an answer whose body cannot be decoded
        # (DecodingError), too many redirects: the request may have been applied.
        if is_write:
            raise OutcomeUnknown(
                f"no answer to {method} {url} after sending it ({_describe(exc)}); it may have been stored",
                system=system,
            ) from exc
        raise StateUnavailable(f"no answer to {method} {url} ({_describe(exc)})", system=system) from exc


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return DEFAULT_RETRY_AFTER


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        # ``{"Message": …}`` (Metrc, observed), ``{"message": …}`` (community file), ``{"Error": …}`` (BioTrack)
        for key, value in folded(body).items():
            if key in ("message", "error") and isinstance(value, str):
                return value
    return response.text.strip()[:300]


def row_errors(response: httpx.Response) -> list[RowError]:
    """Metrc's 400 body (observed): ``[{"row": i, "message": …}, …]``; an object ``{"Message": …}`` becomes
    row 0."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, list):
        out = []
        for item in body:
            if isinstance(item, dict):
                item = folded(item)
                row = item.get("row", 0)
                text = item.get("message", "")
                out.append(RowError(int(row) if isinstance(row, int) else 0, str(text)))
        if out:
            return out
    return [RowError(0, error_message(response))]


def raise_for_status(response: httpx.Response, *, system: str, is_write: bool) -> None:
    """Turn a non-2xx answer into the state-error vocabulary."""
    status = response.status_code
    if status < 300:
        return
    what = f"{response.request.method} {response.request.url.path}"
    if status == 400:
        rows = row_errors(response)
        raise StateRejected("; ".join(f"row {r.row}: {r.message}" for r in rows), rows, system=system)
    if status in (401, 403):
        raise StateAuthError(f"{what} refused ({status}): {error_message(response)}", system=system)
    if status == 429:
        raise RateLimited(f"{what} rate limited", retry_after(response), system=system)
    if status == 503 or (status >= 500 and not is_write):
        raise StateUnavailable(f"{what} answered {status}: {error_message(response)}", system=system)
    if status >= 500:
        # A 500 to a write may come after the store committed it.
        raise OutcomeUnknown(f"{what} answered {status}: {error_message(response)}", system=system)
    raise StateRejected(
        f"{what} answered {status}: {error_message(response)}",
        [RowError(0, error_message(response))],
        system=system,
    )


# -- the one decoding boundary ------------------------------------------------------------------------------
#
# Metrc documents PascalCase (``SalesDateTime``, ``Data``, ``Ids``), some states answer camelCase, the
# community description mixes both, and BioTrack 2024 answers ``session`` where 2022 answers ``Session``.
# Every answer is therefore read here and only here: its keys are folded (case and underscores ignored)
# and matched against answer structs whose field names are folded the same way. Unknown keys are ignored;
# a missing required field is a ``StateProtocolError`` naming the endpoint and the field.


def fold(name: str) -> str:
    """The one spelling a field is matched by: ``SalesDateTime``, ``salesDateTime``, ``sales_date_time``."""
    return name.replace("_", "").lower()


class Wire(msgspec.Struct, rename=fold, kw_only=True):
    """Base of every answer a state system sends: fields match whatever the case of the keys."""


def documented_name(folded_name: str) -> str:
    """A folded field name as the vendor spells it (PascalCase), for error messages."""
    todo: list[type] = [Wire]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        for name in getattr(cls, "__struct_fields__", ()):
            if fold(name) == folded_name:
                return "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    return folded_name


def folded(value: Any) -> Any:
    """``value`` with every object key folded, at every depth."""
    if isinstance(value, dict):
        return {fold(k) if isinstance(k, str) else k: folded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [folded(v) for v in value]
    return value


def endpoint_of(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path}"


def read_json(response: httpx.Response, *, system: str) -> Any:
    """The answer's JSON as plain values (keys as sent), or a protocol error naming the endpoint."""
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        where = endpoint_of(response)
        raise StateProtocolError(
            f"unreadable answer to {where}: {exc}", endpoint=where, system=system
        ) from exc


_MISSING = re.compile(r"missing required field `([^`]+)`")


def convert(raw: Any, type_: Any, *, system: str, endpoint: str) -> Any:
    """Plain JSON values into ``type_`` through the folding boundary."""
    try:
        return msgspec.convert(folded(raw), type_, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        missing = _MISSING.search(text)
        if missing:
            name = documented_name(missing.group(1))
            where = text.rpartition(" - at ")[2] if " - at " in text else "$"
            raise StateProtocolError(
                f"the answer to {endpoint} lacks the required field {name!r} (at {where})",
                endpoint=endpoint,
                field=name,
                system=system,
            ) from exc
        raise StateProtocolError(
            f"the answer to {endpoint} does not read as expected: {text}", endpoint=endpoint, system=system
        ) from exc


def decode(response: httpx.Response, type_: Any, *, system: str) -> Any:
    return convert(read_json(response, system=system), type_, system=system, endpoint=endpoint_of(response))
