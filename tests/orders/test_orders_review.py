"""Gaps a review found in online orders: a promised time without offset, an order stored before intake demanded
one, delivery actors after a crash, the signed boundary's edges, the queue's freshness, similar substitutes."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from hub.domain import signing
from hub.orders import store as ostore
from hub.orders.service import expire_due
from hub.orders.views import queue_view
from hub.store.env import put
from hub.store.keys import text
from tests.orders.conftest import CHANNEL, SECRET, Shop, order_body, wait_for


async def test_a_promised_time_without_offset_is_refused_and_one_stored_breaks_nothing(shop: Shop) -> None:
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    r = await shop.post_order(
        order_body("naive-1", [{"product_id": "PRE-001", "quantity": 1}], promised_at=naive)
    )
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "promised_at"
    assert shop.hub.store.count("orders") == 0

    # an order stored before the intake demanded an offset: the others still expire, queue and count
    good = (await shop.post_order(order_body("ok-1", [{"product_id": "PRE-001", "quantity": 1}]))).json()
    bad = (await shop.post_order(order_body("old-1", [{"product_id": "PRE-002", "quantity": 1}]))).json()
    stored = shop.order(bad["order_id"])
    legacy = msgspec.structs.replace(stored, promised_at=stored.promised_at.replace(tzinfo=None))
    await shop.hub.writer.write(lambda txn: put(txn, shop.hub.store, "orders", text(legacy.id), legacy))
    shop.hub.services.orders.changed()
    assert [q["id"] for q in queue_view(shop.hub)] == [good["order_id"]]
    assert [o.id for o in ostore.open_orders(shop.hub.store)] == [good["order_id"]]
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = await http.get(f"{shop.http}/metrics")
    assert metrics.status_code == 200 and 'storehub_orders{state="received"} 1.0' in metrics.text
    assert await expire_due(shop.hub, datetime.now(UTC) + timedelta(hours=30)) == [good["order_id"]]
    assert shop.order(bad["order_id"]).state == "received"  # left for staff, logged


async def test_a_restarted_delivery_actor_still_delivers(shop: Shop) -> None:
    """The supervisor restarts a crashed actor's ``run``: its HTTP client must be a fresh one, not the one the
    crashed run closed (callbacks would then stop for good)."""
    actor = shop.hub.services.order_callbacks
    first = (await shop.post_order(order_body("rs-1", [{"product_id": "PRE-001", "quantity": 1}]))).json()
    await wait_for(lambda: [e["order_id"] for e in shop.receiver.events] == [first["order_id"]])
    real = actor.pass_once
    crashed = trio.Event()

    async def crash_once() -> None:
        actor.pass_once = real
        crashed.set()
        raise RuntimeError("a crash of the callback sender")

    actor.pass_once = crash_once
    actor.wake()
    with trio.fail_after(10):
        await crashed.wait()
    second = (await shop.post_order(order_body("rs-2", [{"product_id": "PRE-001", "quantity": 1}]))).json()
    await wait_for(
        lambda: [e["order_id"] for e in shop.receiver.events] == [first["order_id"], second["order_id"]],
        timeout=15,
    )
    # the receiver has the event before the hub has its answer and has recorded the delivery as done
    await wait_for(lambda: ostore.deliveries(shop.hub.store, "order_callbacks") == [])
    assert [e["order_id"] for e in shop.receiver.events] == [first["order_id"], second["order_id"]]


def test_callback_and_sms_addresses_are_checked_when_the_configuration_loads() -> None:
    from hub.config import ConfigError, parse_config

    base = 'store = {name = "S", licence = "L", jurisdiction = "CO"}\n'
    ok = parse_config(
        base
        + '[[channels]]\nid = "web"\nsecret = "0123456789abcdef"\ncallback_url = "http://127.0.0.1:9/cb"\n'
    )
    assert ok.channels[0].callback_url == "http://127.0.0.1:9/cb"
    for bad in ("not a url", "ftp://host/x", "http://[::1/", "http:///path", "http://host:99999/"):
        with pytest.raises(ConfigError, match=r"channels\[0\]\.callback_url"):
            parse_config(
                base + f'[[channels]]\nid = "web"\nsecret = "0123456789abcdef"\ncallback_url = "{bad}"\n'
            )
    with pytest.raises(ConfigError, match=r"notices\.sms_url"):
        parse_config(base + '[notices]\nsms = "http"\nsms_url = "gateway.example"\n')
    with pytest.raises(ConfigError, match=r"notices\.sms_url"):
        parse_config(base + '[notices]\nsms = "http"\n')


async def test_a_non_ascii_signature_is_a_401_and_old_signatures_are_forgotten_every_pass(shop: Shop) -> None:
    body = json.dumps(order_body("na-1", [{"product_id": "PRE-001", "quantity": 1}])).encode()
    headers: dict[str, Any] = signing.signed_headers(CHANNEL, SECRET, int(time.time()), body)
    headers[signing.HEADER_SIGNATURE] = b"sha256=" + "é".encode() * 32
    r = await shop.post_order(body, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "bad_signature", r.text
    # the replay table is pruned by housekeeping even when no order is due to expire
    ok = await shop.post_order(body)
    assert ok.status_code == 201 and shop.hub.store.count("order_replays") == 1
    long_ago = int(time.time()) - 3600
    await shop.hub.writer.write(
        lambda txn: ostore.seen_signature(txn, shop.hub.store, CHANNEL, "sha256=old", long_ago)
    )
    assert shop.hub.store.count("order_replays") == 2
    await wait_for(lambda: shop.hub.store.count("order_replays") == 1)
    # a different body under the same external id is still a conflict, the identical resend an answer
    other = await shop.post_order({**json.loads(body), "notes": "another body"})
    assert other.status_code == 409 and other.json()["code"] == "conflict"


async def test_the_menu_drops_a_package_that_expires_at_midnight_without_any_write(tmp_path: Path) -> None:
    from hub.orders.menu import Menu
    from hub.sale import inventory
    from hub.store.env import Store
    from tests.domain.test_orders import pkg, product

    store = Store(tmp_path / "db", map_size=32 << 20)
    today = date(2026, 6, 1)
    with store.env.begin(write=True) as txn:
        inventory.put_product(txn, store, product("EDI"))
        inventory.put_package(txn, store, pkg("A", "EDI", 3, lab_testing="passed"))
        inventory.put_package(txn, store, pkg("B", "EDI", 2, lab_testing="passed", expires_on=today))
    menu = Menu(boot="t")
    await menu.refresh(store, today)
    assert menu.items["EDI"]["available"] == 5
    version = menu.version
    await menu.refresh(store, today)  # nothing written, same day: the same menu
    assert menu.version == version
    await menu.refresh(store, today + timedelta(days=1))  # nothing written, the next day
    assert menu.items["EDI"]["available"] == 3 and menu.version == version + 1


async def test_the_queue_turns_an_order_late_when_the_clock_passes_its_promised_time(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.orders import views

    r = await shop.post_order(order_body("late-1", [{"product_id": "PRE-001", "quantity": 1}]))
    oid = r.json()["order_id"]
    assert next(q for q in views.queue_view(shop.hub) if q["id"] == oid)["late"] is False

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + timedelta(hours=2)

    # no order changed, nothing written: only the clock moved past the promised time
    monkeypatch.setattr(views, "datetime", Later)
    assert next(q for q in views.queue_view(shop.hub) if q["id"] == oid)["late"] is True
