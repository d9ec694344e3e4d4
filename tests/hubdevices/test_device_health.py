"""A device's health record (hub/device_health.py): its JSON is byte for byte what the registers, the back
office and ``GET /api/devices`` received when it was a dict, and the readiness check reads it."""

from __future__ import annotations

import msgspec

from hub.backoffice import readiness
from hub.device_health import DeviceStatus
from hub.domain.devices import DeviceHealth


def health(**kw: object) -> DeviceHealth:
    fields: dict[str, object] = {
        "device_id": "sim-printer",
        "kind": "printer",
        "up": True,
        "last_reading_age_s": 0.5,
        "errors": 0,
        "detail": "online",
    }
    fields.update(kw)
    return msgspec.convert(fields, DeviceHealth)


def test_a_device_added_and_not_yet_heard_from() -> None:
    status = DeviceStatus(id="sim-printer", kind="printer", register="R1")
    # the dict the hub kept before the record, key for key
    assert msgspec.json.encode(status) == (
        b'{"id":"sim-printer","kind":"printer","register":"R1","up":false,"detail":"starting",'
        b'"errors":0,"last_reading_age_s":null}'
    )
    assert status.view() == msgspec.json.decode(msgspec.json.encode(status))


def test_a_report_adds_reconnects_and_queued_jobs_and_says_what_the_register_sees() -> None:
    status = DeviceStatus(id="sim-printer", kind="printer", register="R1")
    assert status.report(health(reconnects=2, queued_jobs=1)) is True  # up, "online": the register shows it
    assert msgspec.json.encode(status) == (
        b'{"id":"sim-printer","kind":"printer","register":"R1","up":true,"detail":"online",'
        b'"errors":0,"last_reading_age_s":0.5,"reconnects":2,"queued_jobs":1}'
    )
    # only the error count moved: nothing on the register's screen changes
    assert status.report(health(errors=3, reconnects=2, queued_jobs=1)) is False
    assert status.errors == 3
    assert status.report(health(up=False, detail="connection refused")) is True


def test_a_failed_print_job_says_why_and_a_printed_one_keeps_the_detail() -> None:
    status = DeviceStatus(id="sim-printer", kind="printer", register="R1")
    status.report(health())
    status.print_job(2, failed=False, detail="printing")
    assert (status.queued_jobs, status.detail) == (2, "online")
    status.print_job(1, failed=True, detail="paper out")
    assert (status.queued_jobs, status.detail) == (1, "paper out")


def test_the_view_is_a_fresh_dict_a_later_report_does_not_change() -> None:
    status = DeviceStatus(id="sim-scale", kind="scale", register="R1")
    before = status.view()
    status.report(health(device_id="sim-scale", kind="scale"))
    assert before["up"] is False and "reconnects" not in before
    assert status.view()["up"] is True


def test_readiness_names_a_device_that_is_down() -> None:
    up = DeviceStatus(id="sim-scale", kind="scale", register="R1", up=True, detail="ok")
    down = DeviceStatus(id="sim-terminal", kind="payment_terminal", register="R2", detail="")
    checks = readiness._devices({"sim-scale": up, "sim-terminal": down})
    assert [(c.name, c.status, c.message) for c in checks] == [
        (
            "Device sim-terminal",
            "problem",
            "The payment terminal of register R2 is down: no answer.",
        )
    ]
    assert [c.message for c in readiness._devices({"sim-scale": up})] == ["All 1 devices are up."]
