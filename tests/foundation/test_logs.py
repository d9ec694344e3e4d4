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


def test_secret_and_personal_values_are_scrubbed_from_messages_and_tracebacks() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("storehub.test.scrub")
    log.addHandler(handler)
    log.propagate = False
    scan = "@\n\x1e\rANSI 636014080102DL00410279ZC03200024DLDAQD7391024\nDCSJOHNSTONE\nDBB02141987\n"
    try:
        # a repr of a command slipped into a message (what the quarantine line used to carry)
        log.error("crashed on OpenDrawer(id='x', counted={'B20': 5}, witness='tom', witness_pin='3333')")
        log.warning("bad body %s", {"pin": "98765", "staff": "ana", "device_token": "tok-abc-123"})
        try:
            raise ValueError(f"cannot parse data={scan!r}")
        except ValueError:
            log.exception("scan failed")
    finally:
        log.removeHandler(handler)
    text = buf.getvalue()
    for secret in ("3333", "98765", "tok-abc-123", "D7391024", "JOHNSTONE", "02141987"):
        assert secret not in text, secret
    first, second, third = (json.loads(line) for line in text.splitlines())
    assert "witness_pin=[redacted]" in first["msg"] and "'B20': 5" in first["msg"]
    assert "'staff': 'ana'" in second["msg"]
    assert "[licence scan]" in third["exc"] and "ValueError" in third["exc"]
