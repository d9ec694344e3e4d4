"""Order status changes back to the channel that sent the order: ``POST callback_url`` with the JSON body,
signed like the channel's own requests (``hub.domain.signing``), the entry's seq as ``X-Storehub-Event``
so a receiver counts each change once. Drained in order per channel by :class:`DeliveryActor`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from actors.delivery import DeliveryFailed
from hub.config import ChannelSection
from hub.domain.delivery import Delivery
from hub.domain.signing import signed_headers


class ChannelCallbacks:
    def __init__(self, channels: dict[str, ChannelSection], timeout: float) -> None:
        self.channels = channels
        self.timeout = timeout
        self.client: httpx.AsyncClient | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """One HTTP client per run of the delivery actor (a restarted run gets a fresh one)."""
        client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout))
        self.client = client
        try:
            yield
        finally:
            self.client = None
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await client.aclose()

    async def send(self, entry: Delivery) -> None:
        ch = self.channels.get(entry.route)
        if ch is None or not ch.callback_url:
            raise DeliveryFailed(f"channel {entry.route!r} has no callback URL", permanent=True)
        if self.client is None:
            raise DeliveryFailed("the callback sender is not running")
        headers = signed_headers(ch.id, ch.secret, int(time.time()), entry.payload)
        headers["x-storehub-event"] = str(entry.seq)
        try:
            # the response is read and closed inside the block: no connection left to the garbage collector
            async with self.client.stream(
                "POST", ch.callback_url, content=entry.payload, headers=headers
            ) as r:
                await r.aread()
                status = r.status_code
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            # InvalidURL is no HTTPError: a bad address is a failed delivery, never a crashed sender
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        if status >= 500 or status in (408, 429):
            raise DeliveryFailed(f"the channel answered {status}")
        if status >= 400:
            raise DeliveryFailed(f"the channel refused the callback ({status})", permanent=True)
