"""The demo store's online orders: a few signed web orders at first start, two of them accepted, so the
picker has a queue to work through."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from hub.domain import signing
from hub.orders.api import DEMO_CHANNEL, demo_order_body, intake_order, products_of
from hub.orders.service import accept_in_txn, ctx_of, decode_intake

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("hub.orders.demo")


async def seed_demo_orders(hub: Hub, n: int = 3) -> list[str]:
    ctx = ctx_of(hub)
    channel = ctx.channels.get(DEMO_CHANNEL)
    if channel is None:
        return []
    with hub.store.read() as txn:
        if txn.get(b"demo_orders", db=hub.store.db("meta")) is not None:
            return []
    ids = []
    for i in range(n):
        body = demo_order_body(hub, i + 1, promised_in=timedelta(minutes=30 + 45 * i))
        intake = decode_intake(body)
        sig = signing.signature(channel.secret, int(time.time()), body)
        _, answer = await intake_order(hub, channel, sig, body, intake, products_of(hub, intake))
        ids.append(answer["order_id"])
    now = datetime.now(UTC)

    def accept_two(txn: object) -> None:
        for oid in ids[:2]:
            accept_in_txn(txn, hub, oid, by="demo", register="", now=now)  # type: ignore[arg-type]
        txn.put(b"demo_orders", b"1", db=hub.store.db("meta"))  # type: ignore[attr-defined]

    try:
        await hub.writer.write(accept_two, label="demo_orders")
    except Exception:
        log.exception("demo: could not accept the seeded orders")
    ctx.changed()
    log.info("demo: seeded web orders %s", ", ".join(ids))
    return ids
