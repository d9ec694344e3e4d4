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


def test_keys_passwords_and_secrets_are_scrubbed_whatever_their_prefix() -> None:
    """Vendor credentials reach logs as `api_key=…`, `"vendor_key": …` (Metrc's user and vendor keys, a
    terminal's auth key) in a repr or a config error; each value is replaced, the field name is kept."""
    lines = [
        "StateSystemConfig(vendor_key='vk-1111', user_key='uk-2222', base_url='https://sandbox')",
        '{"api_key": "ak-3333", "auth_key": "au-4444", "licence_count": 2}',
        "terminal auth_key=au-5555 api_key=ak-6666; PASSWORD=pw-7777 secret: 'sc-8888'",
        "{'password': 'pw-9999', 'client_secret': 'cs-1010', 'db_passwd': 'pd-1212', 'passphrase': 'pp-1313'}",
        "headers={'Authorization': 'Basic dms6dWs=', 'Accept': 'application/json'}",
        "Authorization: Bearer tok-1414",
    ]
    text = "\n".join(logs.scrub(line) for line in lines)
    for secret in (
        "vk-1111",
        "uk-2222",
        "ak-3333",
        "au-4444",
        "au-5555",
        "ak-6666",
        "pw-7777",
        "sc-8888",
        "pw-9999",
        "cs-1010",
        "pd-1212",
        "pp-1313",
        "dms6dWs=",
        "tok-1414",
    ):
        assert secret not in text, (secret, text)
    assert "vendor_key='[redacted]'" not in text  # the quotes go with the value
    assert "vendor_key=[redacted]" in text and "base_url='https://sandbox'" in text
    assert "'Accept': 'application/json'" in text
