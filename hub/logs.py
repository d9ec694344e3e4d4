"""Structured logs: one JSON object per line on stdout, for journald. No personal data goes in a log line:
staff and registers by id, customers never by name or ID number.

Code should never put a PIN, a token or a customer's data in a message; ``scrub`` is the safety net for
what slips through anyway (a ``repr`` of a command, an exception quoting its input): values of secret or
personal fields (``pin='3333'``, ``"token": "…"``, ``vendor_key=…``) and raw licence scans (AAMVA
``ANSI …`` blocks) are replaced before the line is written, in the message and in the traceback alike."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_EXTRA = ("actor", "register", "request_id", "device", "licence")
# set by the supervisor (actor) and the WebSocket dispatch (register, request id); trio tasks inherit it
context: ContextVar[dict[str, Any] | None] = ContextVar("storehub_log_context", default=None)


def bind(**fields: Any) -> None:
    """Add fields to every log line of this task and the tasks it starts."""
    context.set({**(context.get() or {}), **fields})


_FIELDS = (
    r"[A-Za-z_]*(?:pin|token|token_hash|password|passwd|passphrase|secret|credentials?|authorization"
    # credentials named by their role: Metrc's vendor_key/user_key, a terminal's auth_key, api_key
    r"|_key|apikey"
    r"|licen[cs]e(?:_number)?|name|first_name|last_name"
    r"|dob|date_of_birth|birth_date|address|street|city|postal_code|zip|id_number|id_scan|customer_id)"
)
# key='value', key="value", key=value, "key": "value", 'key': 'value'; an unquoted "Bearer x" whole
_KEYED = re.compile(
    rf"""(?P<key>["']?\b{_FIELDS}["']?\s*[:=]\s*)"""
    r"""(?P<val>'[^']*'|"[^"]*"|(?:Bearer|Basic)\s+[^\s,;)}\]]+|[^\s,;)}\]]+)""",
    re.IGNORECASE,
)
# an AAMVA PDF417 payload: "@" LF RS CR "ANSI " IIN ... (up to the end of the quoted string or line)
_AAMVA = re.compile(r"@?(?:\\n|\n)?(?:\\x1e|\x1e)?(?:\\r|\r)?ANSI \d{6}[^'\"]*")


def scrub(text: str) -> str:
    """Replace secret and personal values in a log text (see the module docstring)."""
    if not text:
        return text
    text = _AAMVA.sub("[licence scan]", text)
    return _KEYED.sub(lambda m: m.group("key") + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in (context.get() or {}).items():
            out[key] = value
        for key in _EXTRA:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def setup(level: str = "INFO", *, json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # one line per state-system request would drown the hub's own lines; failures are logged by the channel
    for noisy in ("hypercorn.error", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel("WARNING")
