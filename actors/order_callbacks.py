"""Order status changes back to the channel that sent the order: ``POST callback_url`` with the JSON body,
signed like the channel's own requests (``hub.domain.signing``), the entry's seq as ``X-Storehub-Event``
so a receiver counts each change once. Drained in order per channel by :class:`DeliveryActor`."""

from __future__ import annotations

import time

import httpx

from actors.delivery import DeliveryFailed
from hub.config import ChannelSection
from hub.domain.delivery import Delivery
from hub.domain.signing import signed_headers


class ChannelCallbacks:
    def __init__(self, channels: dict[str, ChannelSection], timeout: float) -> None:
        self.channels = channels
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(timeout))

    async def send(self, entry: Delivery) -> None:
        ch = self.channels.get(entry.route)
        if ch is None or not ch.callback_url:
            raise DeliveryFailed(f"channel {entry.route!r} has no callback URL", permanent=True)
        headers = signed_headers(ch.id, ch.secret, int(time.time()), entry.payload)
        headers["x-storehub-event"] = str(entry.seq)
        try:
            r = await self.client.post(ch.callback_url, content=entry.payload, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        if r.status_code >= 500 or r.status_code in (408, 429):
            raise DeliveryFailed(f"the channel answered {r.status_code}")
        if r.status_code >= 400:
            raise DeliveryFailed(f"the channel refused the callback ({r.status_code})", permanent=True)

    async def aclose(self) -> None:
        await self.client.aclose()
