"""The latest health of each device, as the registers, the back office and ``GET /api/devices`` show it.

hub/devices.py keeps one :class:`DeviceStatus` per device (``Services.device_health``) and changes it only
through the methods below; its JSON is the record itself (``msgspec`` encodes the fields in order and leaves
out what was never reported), so a register's snapshot and the REST answers stay what they were when this
was a dict: ``id, kind, register, up, detail, errors, last_reading_age_s`` from the start, ``reconnects``
and ``queued_jobs`` once the device first reported them.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from hub.domain.devices import DeviceHealth


class DeviceStatus(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    register: str | None  # the register it is paired with
    up: bool = False
    detail: str = "starting"
    errors: int = 0
    last_reading_age_s: float | None = None
    # reported by the device actor's health (and a printer's job updates): absent until then
    reconnects: int | UnsetType = UNSET
    queued_jobs: int | UnsetType = UNSET

    def report(self, h: DeviceHealth) -> bool:
        """Take the actor's latest health; returns whether the register's view of it changed (up, detail)."""
        changed = self.up != h.up or self.detail != h.detail
        self.up = h.up
        self.detail = h.detail
        self.errors = h.errors
        self.last_reading_age_s = h.last_reading_age_s
        self.reconnects = h.reconnects
        self.queued_jobs = h.queued_jobs
        return changed

    def print_job(self, queued_jobs: int, *, failed: bool, detail: str) -> None:
        """A printer's job moved on: how many wait, and why the last one failed."""
        self.queued_jobs = queued_jobs
        if failed:
            self.detail = detail

    def view(self) -> dict[str, Any]:
        """The record as the register's snapshot carries it (a fresh dict: a snapshot never changes after)."""
        view: dict[str, Any] = msgspec.to_builtins(self)
        return view
