"""One-for-one supervision on trio nurseries.

Each child runs under its own supervising task, which restarts it on ``Exception`` with exponential
backoff; more than ``max_restarts`` failures inside ``window`` seconds escalate to the parent (Erlang's
restart intensity). Restart intensity is counted on ``trio.current_time()`` so it works under MockClock.
``Cancelled`` and ``KeyboardInterrupt`` are BaseExceptions and always pass through.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec
import trio

from hub.actor import describe_error
from hub.logs import bind

log = logging.getLogger("hub.supervisor")

ChildFn = Callable[
    ..., Awaitable[Any]
]  # async def child(*, task_status) -> never returns (or returns when done)


class Escalation(Exception):
    """A child failed more often than its restart intensity allows; the parent must deal with it."""

    def __init__(self, name: str, failures: int, window: float) -> None:
        super().__init__(f"actor {name!r} failed {failures} times within {window:g} s; giving up")
        self.name = name


class ChildSpec(msgspec.Struct, kw_only=True):
    name: str
    run: ChildFn
    # permanent: always restarted; transient: restarted only after a crash, a clean return ends it
    restart: Literal["permanent", "transient"] = "permanent"
    max_restarts: int = 5
    window: float = 10.0
    backoff: float = 0.05
    max_backoff: float = 5.0
    # a critical child (the store writer) takes the hub down when it gives up; any other child is parked:
    # reported down (healthz 503, actor_up 0, alert) and tried again later, while the rest of the store sells
    critical: bool = False


class ChildState(msgspec.Struct, kw_only=True):
    name: str
    running: bool = False
    restarts: int = 0
    last_error: str = ""
    parked: bool = False


async def supervise(
    spec: ChildSpec,
    *,
    metrics: Any = None,
    on_state: Callable[[ChildState], None] | None = None,
    park_seconds: float | None = None,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``spec.run`` under supervision. The first start is explicit: its failure raises to the caller.

    Past the restart intensity the failure escalates to the parent (raises ``Escalation``), unless
    ``park_seconds`` is given: then the child stays down that long and is tried again (the parent's choice
    for children the store can run without for a while)."""

    bind(actor=spec.name)
    state = ChildState(name=spec.name)
    failures: deque[float] = deque()
    started = False

    def report(running: bool) -> None:
        state.running = running
        if metrics is not None:
            metrics.actor_up.labels(spec.name).set(1 if running else 0)
            metrics.actor_parked.labels(spec.name).set(1 if state.parked else 0)
        if on_state is not None:
            on_state(state)

    if metrics is not None:
        # restarts, parked and quarantine series exist at 0 before the first crash: increase() over the
        # first crash loop after a start (the post-upgrade case) then sees it
        metrics.actor(spec.name)
        metrics.actor_up.labels(spec.name).set(0)

    while True:
        try:
            async with trio.open_nursery() as nursery:
                handle = await nursery.start(spec.run)
                report(True)
                if not started:
                    started = True
                    task_status.started(handle)
            report(False)
            if spec.restart == "transient":
                if metrics is not None:  # finished, not down: ActorDown must not page for it
                    metrics.actor_up.remove(spec.name)
                return
            log.warning("actor %s returned; restarting it", spec.name)
        except Exception as exc:
            report(False)
            if not started:
                raise  # a start failure is the parent's to see, not ours to hide
            now = trio.current_time()
            failures.append(now)
            while failures and now - failures[0] > spec.window:
                failures.popleft()
            state.restarts += 1
            state.last_error = _describe(exc)
            if metrics is not None:
                metrics.actor_restarts.labels(spec.name).inc()
            log.error(
                "actor %s crashed (%s); failure %d in window", spec.name, state.last_error, len(failures)
            )
            if len(failures) > spec.max_restarts:
                if park_seconds is None:
                    raise Escalation(spec.name, len(failures), spec.window) from exc
                log.critical(
                    "actor %s gave up after %d failures; parked for %g s",
                    spec.name,
                    len(failures),
                    park_seconds,
                )
                state.parked = True
                report(False)
                await trio.sleep(park_seconds)
                failures.clear()
                state.parked = False
                report(False)
                continue
            await trio.sleep(min(spec.backoff * 2 ** (len(failures) - 1), spec.max_backoff))


def _describe(exc: BaseException) -> str:
    # type and place only: an exception's text may quote the licence scan or PIN that broke the actor
    return describe_error(exc)


class Supervisor:
    """A group of supervised children sharing one nursery; one child's crash never touches its siblings."""

    def __init__(self, nursery: trio.Nursery, *, metrics: Any = None, park_seconds: float = 60.0) -> None:
        self._nursery = nursery
        self._metrics = metrics
        self.park_seconds = park_seconds
        self.children: dict[str, ChildState] = {}

    async def start(self, spec: ChildSpec) -> Any:
        def on_state(s: ChildState) -> None:
            self.children[s.name] = s

        park = None if spec.critical else self.park_seconds
        return await self._nursery.start(
            lambda task_status: supervise(
                spec, metrics=self._metrics, on_state=on_state, park_seconds=park, task_status=task_status
            )
        )

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        """A background task that is not supervised (a one-off write, an import): it ends with the hub."""
        self._nursery.start_soon(fn)

    async def start_task(self, fn: Callable[..., Awaitable[object]]) -> Any:
        """Start an unsupervised task that reports ``task_status.started(value)``; return that value (a
        simulator's address, say). It ends with the hub."""
        return await self._nursery.start(fn)

    def all_running(self) -> bool:
        return bool(self.children) and all(c.running for c in self.children.values())
