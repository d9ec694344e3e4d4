"""A thin actor that drains one delivery table (channel callbacks, customer notices) in order, with
retries and backoff: it reads what is due (``hub.domain.delivery.due``), hands each entry to its transport,
and commits what the core decides (``after``). Never holds a read transaction across the send."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from hub.domain.delivery import Delivery, after, due
from hub.domain.outbox import DEFAULT_POLICY, RetryPolicy
from hub.orders import store as ostore

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("actors.delivery")


class DeliveryFailed(Exception):
    """The transport could not deliver; ``permanent`` when retrying cannot help (a 4xx, a bad address)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


Transport = Callable[[Delivery], Awaitable[None]]


class DeliveryActor:
    def __init__(
        self,
        hub: Hub,
        table: str,
        transport: Transport,
        *,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        poll_seconds: float = 2.0,
        rng: Callable[[], float] = random.random,
        session: Callable[[], AbstractAsyncContextManager[object]] | None = None,
    ) -> None:
        self.hub = hub
        # the transport's connections, opened afresh by every run: the supervisor restarts ``run`` after a
        # crash, and a client closed by the run that crashed would refuse every delivery after it
        self.session = session
        self.table = table
        self.transport = transport
        self.retry_policy = retry_policy
        self.poll_seconds = poll_seconds
        self.rng = rng
        self.last_error = ""
        self.sent = 0
        self._wake = trio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[DeliveryActor] = trio.TASK_STATUS_IGNORED) -> None:
        async with self.session() if self.session is not None else nullcontext():
            task_status.started(self)
            while True:
                await self.pass_once()
                with trio.move_on_after(self.poll_seconds):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def pass_once(self) -> None:
        now = datetime.now(UTC)
        for entry in due(ostore.deliveries(self.hub.store, self.table), now):
            ok, error, permanent = True, "", False
            try:
                await self.transport(entry)
            except DeliveryFailed as exc:
                ok, error, permanent = False, exc.message, exc.permanent
            except Exception as exc:  # a transport's surprise is one failed attempt, retried, not a crash
                log.exception("%s %d: the transport failed unexpectedly", self.table, entry.seq)
                ok, error = False, f"{type(exc).__name__}: {exc}"
            updated = after(
                entry,
                ok,
                now=datetime.now(UTC),
                rng=self.rng,
                policy=self.retry_policy,
                error=error,
                permanent=permanent,
            )
            await self.hub.writer.write(
                lambda txn, e=updated: ostore.save_delivery(txn, self.hub.store, self.table, e),
                label=self.table,
            )
            if ok:
                self.sent += 1
            else:
                self.last_error = error
                log.warning("%s %d to %s not delivered: %s", self.table, entry.seq, entry.route, error)
