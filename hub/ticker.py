"""One hub-wide tick: a single task that wakes every ``period`` and asks the parties waiting on it whether they are done.

A per-connection ``trio.sleep`` that runs out costs a deadline, a cancel scope and a caught ``Cancelled`` each
time; fifty busy connections polling every few milliseconds spend a noticeable part of the hub's CPU on it.
Here one task sleeps for all of them, and only while someone waits: a party with nothing pending is not in the
set and costs nothing. A party is called on the ticker's task and must not wait (it queues what it has to send).
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

log = logging.getLogger("hub.ticker")


class Waiter(Protocol):
    def tick(self, now: float) -> bool:
        """Time is ``now``: do what is due; True when nothing is left to wait for (then it is dropped)."""
        ...


class Ticker:
    """Calls each waiting party's ``tick`` once per ``period`` until it answers True."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._waiting: dict[Waiter, None] = {}  # an ordered set: the first to wait is the first asked
        self._wakeup = trio.Event()
        self.ticks = 0  # periods run (tests: the ticker sleeps while nobody waits)

    def want(self, waiter: Waiter) -> None:
        """Ask ``waiter`` at every tick from the next one on, until its ``tick`` answers True."""
        self._waiting[waiter] = None
        self._wakeup.set()

    def drop(self, waiter: Waiter) -> None:
        self._waiting.pop(waiter, None)

    def waiting(self, waiter: Waiter) -> bool:
        return waiter in self._waiting

    async def run(self) -> None:
        waiting = self._waiting
        while True:
            if not waiting:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            await trio.sleep(self.period)
            self.ticks += 1
            now = trio.current_time()
            for waiter in list(waiting):
                if waiter not in waiting:  # dropped by an earlier one's tick
                    continue
                try:
                    done = waiter.tick(now)
                except Exception:  # one party's bug must not stop the tick for every other
                    log.exception("a tick failed; that party no longer waits")
                    done = True
                if done:
                    waiting.pop(waiter, None)
