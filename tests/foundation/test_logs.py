"""Structured logs: one JSON object per line, with the actor, register and request id where known."""

from __future__ import annotations

import io
import json
import logging

import trio

from hub import logs


async def test_json_lines_carry_task_context() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("storehub.test.logs")
    log.addHandler(handler)
    log.propagate = False
    try:

        async def register_task() -> None:
            logs.bind(register="R1", request_id="abc-1")
            log.warning("scale in motion")

        async with trio.open_nursery() as n:
            n.start_soon(register_task)
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in buf.getvalue().splitlines())
    assert first["register"] == "R1" and first["request_id"] == "abc-1" and first["msg"] == "scale in motion"
    assert first["level"] == "warning" and first["ts"].endswith("+00:00")
    assert "register" not in second  # a sibling task's context does not leak
