"""Hand-rolled request/reply types and routing for the sandbox: no web framework, just a table of
(method, path pattern) → handler, each handler a plain function of the request that returns a Reply."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_scope(cls, scope: dict[str, Any], body: bytes) -> Request:
        raw_query = scope.get("query_string", b"").decode("latin-1")
        # ASP.NET binds query names case-insensitively; so does the sandbox.
        query = {k.lower(): v for k, v in parse_qsl(raw_query, keep_blank_values=True)}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope["path"]
        if len(path) > 1:
            path = path.rstrip("/")
        return cls(scope["method"].upper(), path, query, headers, body)

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
        except ValueError:
            return None
        return user, password

    def bearer(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json; charset=utf-8"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


def message(status: int, text: str) -> Reply:
    """A single error object as Metrc has been observed to send it: ``{"Message": …}`` (M6)."""
    return Reply(status, {"Message": text})


def row_errors(errors: list[tuple[int, str]]) -> Reply:
    """Metrc's validation failure (observed): HTTP 400 with one lower-case {row, message} per problem."""
    return Reply(400, [{"row": row, "message": text} for row, text in errors])


class Refusal(Exception):
    """Raised inside a store transaction to roll it back and answer with ``reply``."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.body)
        self.reply = reply


Handler = Callable[[Request], Reply]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/") or "/")
        self._routes.append((method, re.compile(f"^{regex}$", re.IGNORECASE), handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """(handler, path params, path known under another method)."""
        path_known = False
        for route_method, regex, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            if route_method == method:
                return handler, found.groupdict(), True
            path_known = True
        return None, {}, path_known
