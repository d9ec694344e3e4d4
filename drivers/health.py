"""Device health as the actors report it: up/down transitions at once, a refresh every few seconds.

Shared by the scale, scanner, printer and payment-terminal actors so that every device reports the same
``DeviceHealth`` shape (register banner, back office, ``/metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from hub.domain.devices import DeviceHealth, DeviceKind, utc_now

Publish = Callable[[Any], Awaitable[None]]

log = logging.getLogger("storehub.devices")


class HealthTracker:
    def __init__(
        self, device_id: str, kind: DeviceKind, publish: Publish, *, interval_s: float = 5.0
    ) -> None:
        self.device_id = device_id
        self.kind: DeviceKind = kind
        self._publish = publish
        self.interval_s = interval_s
        self.up = False
        self.detail = "starting"
        self.errors = 0
        self.reconnects = 0
        self.queued_jobs = 0
        self.paper_out = False
        self.last_reading_at: float | None = None
        self._dirty = True
        self._last_published = -float("inf")

    def reading(self) -> None:
        """A valid frame/answer arrived: the device is alive."""
        self.last_reading_at = trio.current_time()

    def error(self, count: int = 1) -> None:
        self.errors += count
        self._dirty = True

    def set_queued(self, n: int) -> None:
        if n != self.queued_jobs:
            self.queued_jobs = n
            self._dirty = True

    def set_paper_out(self, paper_out: bool) -> None:
        if paper_out != self.paper_out:
            self.paper_out = paper_out
            self._dirty = True

    async def set_up(self, detail: str = "") -> None:
        if not self.up or detail != self.detail:
            if not self.up:
                log.info("%s %s up %s", self.kind, self.device_id, detail)
            self.up, self.detail = True, detail
            await self.publish_now()

    async def set_down(self, detail: str, *, count_error: bool = True) -> None:
        if self.up or detail != self.detail:
            if self.up and count_error:
                self.errors += 1
            log.warning("%s %s down: %s", self.kind, self.device_id, detail)
            self.up, self.detail = False, detail
            await self.publish_now()

    def snapshot(self) -> DeviceHealth:
        age = None if self.last_reading_at is None else round(trio.current_time() - self.last_reading_at, 3)
        return DeviceHealth(
            device_id=self.device_id,
            kind=self.kind,
            up=self.up,
            last_reading_age_s=age,
            errors=self.errors,
            detail=self.detail,
            at=utc_now(),
            reconnects=self.reconnects,
            queued_jobs=self.queued_jobs,
            paper_out=self.paper_out,
        )

    async def publish_now(self) -> None:
        self._dirty = False
        self._last_published = trio.current_time()
        await self._publish(self.snapshot())

    async def run(self) -> None:
        """Publish when something changed (at most 4 times a second) and every ``interval_s`` anyway."""
        while True:
            await trio.sleep(0.25)
            if self._dirty or trio.current_time() - self._last_published >= self.interval_s:
                await self.publish_now()
