"""Structured logs: one JSON object per line on stdout, for journald. No personal data goes in a log line:
staff and registers by id, customers never by name or ID number."""

from __future__ import annotations

import json
import logging
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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in (context.get() or {}).items():
            out[key] = value
        for key in _EXTRA:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
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
