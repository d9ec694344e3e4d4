"""Online orders against a real hub: the signed boundary, idempotency (a resent request included), the menu and its ETag, races for the
last unit and for one order, refused tags, short picks with substitution, expiry, callbacks in order."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import trio

from hub.client import ClientError, HubClient, connect
from hub.domain import signing
from hub.orders import store as ostore
from hub.orders.service import expire_due
from hub.sale import inventory
from tests.conftest import ws_url
from tests.orders.conftest import CHANNEL, SECRET, Shop, order_body, ready_picker, wait_for
from tests.state.conftest import ready


def count(shop: Shop, table: str) -> int:
    return shop.hub.store.count(table)


async def refused(coro: Any, code: str) -> str:
    try:
        await coro
    except ClientError as exc:
        assert exc.code == code, (exc.code, exc.message)
        return exc.message
    raise AssertionError(f"expected a refusal {code}")


async def accepted_order(
    shop: Shop, picker: HubClient, lines: list[dict[str, Any]], ext: str, **over: Any
) -> str:
    r = await shop.post_order(order_body(ext, lines, **over))
    assert r.status_code == 201, r.text
    oid: str = r.json()["order_id"]
    await picker.request("accept_order", order_id=oid)
    return oid


async def pair_p2(shop: Shop) -> None:
    from hub import auth

    now = datetime.now(UTC)
    await shop.hub.writer.write(
        lambda txn: auth.create_pairing_code(txn, shop.hub.store, "P2", by="test", now=now, code="55555555")
    )


# ---------------------------------------------------------------------------------------------- the boundary
async def test_signature_timestamp_and_replay_are_refused(shop: Shop) -> None:
    body = json.dumps(order_body("sig-1", [{"product_id": "PRE-001", "quantity": 1}])).encode()
    bad = await shop.post_order(body, secret="another-secret-of-someone-else")
    assert bad.status_code == 401 and bad.json()["code"] == "bad_signature"
    # well past the 300 s allowed (the exact boundary is tested in tests/domain/test_orders.py)
    old = await shop.post_order(body, ts=int(time.time()) - 330)
    assert old.status_code == 401 and old.json()["code"] == "stale_timestamp"
    future = await shop.post_order(body, ts=int(time.time()) + 330)
    assert future.status_code == 401 and future.json()["code"] == "stale_timestamp"
    unknown = await shop.post_order(
        body, headers={**signing.signed_headers("nope", SECRET, int(time.time()), body)}
    )
    assert unknown.status_code == 401 and unknown.json()["code"] == "unknown_channel"
    tampered = signing.signed_headers(CHANNEL, SECRET, int(time.time()), body)
    r = await shop.post_order(body.replace(b'"quantity": 1', b'"quantity": 9'), headers=tampered)
    assert r.status_code == 401 and r.json()["code"] == "bad_signature"
    assert count(shop, "orders") == 0
    headers = signing.signed_headers(CHANNEL, SECRET, int(time.time()), body)
    first = await shop.post_order(body, headers=headers)
    assert first.status_code == 201
    # the identical request resent (the channel's first attempt timed out): the same order, idempotently
    resent = await shop.post_order(body, headers=headers)
    assert resent.status_code == 200, resent.text
    assert resent.json()["order_id"] == first.json()["order_id"]
    assert count(shop, "orders") == 1


async def test_same_order_twice_is_one_and_a_different_body_is_409(shop: Shop) -> None:
    body = order_body("dup-1", [{"product_id": "PRE-001", "quantity": 1}])
    a = await shop.post_order(body)
    b = await shop.post_order(body, ts=int(time.time()) + 1)  # a retry: signed again, a new timestamp
    assert a.status_code == 201 and b.status_code == 200
    assert a.json()["order_id"] == b.json()["order_id"]
    other = await shop.post_order({**body, "notes": "extra napkins"}, ts=int(time.time()) + 2)
    assert other.status_code == 409 and other.json()["code"] == "conflict"
    assert count(shop, "orders") == 1
    assert [e["status"] for e in await wait_for(lambda: shop.receiver.events)] == ["received"]


async def test_bad_input_names_the_field_and_stores_nothing(shop: Shop) -> None:
    audit_before = count(shop, "audit")
    cases = [
        (order_body("bad-1", []), "lines"),
        (order_body("bad-2", [{"product_id": "NOPE-1", "quantity": 1}]), "lines[0].product_id"),
        (order_body("bad-3", [{"product_id": "FLW-B14", "quantity": 1}]), "lines[0].weight_mg"),
        (order_body("bad-4", [{"product_id": "PRE-001", "quantity": 1}], fulfilment="drone"), "fulfilment"),
        (
            {**order_body("bad-5", [{"product_id": "PRE-001", "quantity": 1}]), "customer": {"name": "X"}},
            "customer",
        ),
        (
            order_body("bad-6", [{"product_id": "PRE-001", "quantity": 1}], promised_at="tomorrow"),
            "promised_at",
        ),
    ]
    for body, field in cases:
        r = await shop.post_order(body)
        assert r.status_code == 400, (field, r.text)
        assert r.json()["field"].startswith(field), (field, r.json())
    r = await shop.post_order(b"{not json")
    assert r.status_code == 400 and r.json()["field"] == "body"
    assert count(shop, "orders") == 0 and count(shop, "order_replays") == 0
    assert count(shop, "audit") == audit_before


# ---------------------------------------------------------------------------------------------- menu
async def test_menu_never_shows_reserved_stock_and_answers_changes_by_etag(shop: Shop) -> None:
    full = await shop.menu()
    assert full.status_code == 200
    etag, version = full.headers["etag"], full.json()["version"]
    items = {p["id"]: p for p in full.json()["products"]}
    assert all(p["available"] > 0 for p in items.values())
    same = await shop.menu(etag=etag)
    assert same.status_code == 304
    free = items["EDI-001"]["available"]
    async with connect(ws_url(shop.hub)) as picker:
        await ready_picker(picker)
        oid = await accepted_order(shop, picker, [{"product_id": "EDI-001", "quantity": free}], "menu-1")
    after = await shop.menu(etag=etag)
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert "EDI-001" not in {p["id"] for p in after.json()["products"]}  # all of it is reserved
    delta = (await shop.menu(since=version)).json()
    assert delta["full"] is False
    assert {p["id"]: p["available"] for p in delta["products"]} == {"EDI-001": 0}
    # a package on hold is not offered either
    pkg = shop.packages("EDI-002")[0]
    before = (await shop.menu()).json()
    was = next(p["available"] for p in before["products"] if p["id"] == "EDI-002")
    await shop.hub.writer.write(
        lambda txn: inventory.put_package(txn, shop.hub.store, msgspec.structs.replace(pkg, status="on_hold"))
    )
    now_ = next(p["available"] for p in (await shop.menu()).json()["products"] if p["id"] == "EDI-002")
    assert now_ == was - pkg.quantity
    assert shop.reservations()["EDI-001"].orders[oid].unbound == free


async def test_a_register_cannot_sell_a_reserved_unit(shop: Shop) -> None:
    hub = shop.hub
    pkgs = shop.packages("EDI-003")
    total = sum(p.quantity for p in pkgs)
    async with connect(ws_url(hub)) as picker, connect(ws_url(hub)) as register:
        await ready_picker(picker)
        await accepted_order(shop, picker, [{"product_id": "EDI-003", "quantity": total}], "res-1")
        await ready(register, "R1", "maria")
        await register.request("scan", data=hub.services.demo.store.customer("adult").id_scan)
        message = await refused(register.request("add_package", tag=pkgs[0].tag), "reserved")
        assert "reserved for online orders" in message


# ---------------------------------------------------------------------------------------------- races
async def test_two_registers_and_a_picker_race_for_the_last_unit(shop: Shop) -> None:
    hub = shop.hub
    pkgs = shop.packages("EDI-004")
    last = pkgs[0]

    def leave_one(txn: Any) -> None:
        for p in pkgs:
            q = 1 if p.tag == last.tag else 0
            inventory.put_package(
                txn, hub.store, msgspec.structs.replace(p, quantity=q, status="active" if q else "finished")
            )

    await hub.writer.write(leave_one)
    adult = hub.services.demo.store.customer("adult").id_scan
    r = await shop.post_order(order_body("race-1", [{"product_id": "EDI-004", "quantity": 1}]))
    oid = r.json()["order_id"]
    outcomes: dict[str, str] = {}
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as r1, connect(ws_url(hub)) as r2, connect(ws_url(hub)) as picker:
            await ready(r1, "R1", "maria")
            await ready(r2, "R2", "maria")
            for c in (r1, r2):
                await c.request("scan", data=adult)
                await c.request("add_package", tag=last.tag)  # a cart is not a reservation
            await ready_picker(picker)

            async def sell(name: str, c: HubClient) -> None:
                try:
                    await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 100_00}])
                    outcomes[name] = "won"
                except ClientError as exc:
                    outcomes[name] = exc.code

            async def pick() -> None:
                try:
                    await picker.request("accept_order", order_id=oid)
                    await picker.request("claim_order", order_id=oid)
                    await picker.request("pick_scan", order_id=oid, data=last.tag)
                    outcomes["picker"] = "won"
                except ClientError as exc:
                    outcomes["picker"] = exc.code

            async with trio.open_nursery() as n:
                n.start_soon(sell, "R1", r1)
                n.start_soon(sell, "R2", r2)
                n.start_soon(pick)
    winners = [k for k, v in outcomes.items() if v == "won"]
    assert len(winners) == 1, outcomes
    after = inventory.package(hub.store, last.tag)
    assert after is not None
    if winners == ["picker"]:
        assert after.quantity == 1 and shop.reservations()["EDI-004"].orders[oid].tags == {last.tag: 1}
    else:
        assert after.quantity == 0 and shop.reservations() == {}
        assert shop.order(oid).state == "received"


async def test_two_pickers_claiming_one_order_one_wins(shop: Shop) -> None:
    await pair_p2(shop)
    async with connect(ws_url(shop.hub)) as p1, connect(ws_url(shop.hub)) as p2:
        await ready_picker(p1)
        await p2.pair("55555555")
        await p2.login("ana", "1111")
        oid = await accepted_order(shop, p1, [{"product_id": "PRE-002", "quantity": 1}], "claim-1")
        results: list[str] = []

        async def claim(c: HubClient) -> None:
            try:
                await c.request("claim_order", order_id=oid)
                results.append("won")
            except ClientError as exc:
                results.append(exc.code)

        async with trio.open_nursery() as n:
            n.start_soon(claim, p1)
            n.start_soon(claim, p2)
        assert sorted(results) == ["claimed", "won"]
        holder = shop.order(oid).picker
        loser = p2 if holder == "P1" else p1
        tag = shop.packages("PRE-002")[0].tag
        msg = await refused(loser.request("pick_scan", order_id=oid, data=tag), "claimed")
        assert holder in msg


async def test_wrong_unsellable_and_reserved_elsewhere_tags_are_refused_with_the_reason(shop: Shop) -> None:
    hub = shop.hub
    async with connect(ws_url(hub)) as picker:
        await ready_picker(picker)
        # another order already holds one package of PRE-003 in full
        held = msgspec.structs.replace(shop.packages("PRE-003")[0], quantity=2)
        await hub.writer.write(lambda txn: inventory.put_package(txn, hub.store, held))
        other = await accepted_order(
            shop, picker, [{"product_id": "PRE-003", "quantity": held.quantity}], "held-1"
        )
        await picker.request("claim_order", order_id=other)
        for _ in range(held.quantity):
            await picker.request("pick_scan", order_id=other, data=held.tag)
        await picker.request("order_ready", order_id=other)
        oid = await accepted_order(shop, picker, [{"product_id": "PRE-003", "quantity": 1}], "tags-1")
        await picker.request("claim_order", order_id=oid)
        wrong = shop.packages("FLW-001")[0]
        msg = await refused(picker.request("pick_scan", order_id=oid, data=wrong.tag), "wrong_product")
        assert wrong.tag in msg and "not in this order" in msg
        msg = await refused(picker.request("pick_scan", order_id=oid, data=held.tag), "reserved_elsewhere")
        assert "another order" in msg
        hold = next(p for p in shop.packages("PRE-003") if p.tag != held.tag)
        await hub.writer.write(
            lambda txn: inventory.put_package(txn, hub.store, msgspec.structs.replace(hold, status="on_hold"))
        )
        msg = await refused(picker.request("pick_scan", order_id=oid, data=hold.tag), "on_hold")
        assert "on hold" in msg
        snap = await picker.wait_snapshot(
            lambda s: s["picker"]["last_pick"] and s["picker"]["last_pick"]["code"] == "on_hold"
        )
        assert "on hold" in snap["state"]["picker"]["last_pick"]["message"]
        assert await refused(picker.request("pick_scan", order_id=oid, data="not a tag"), "not_a_tag")
        assert shop.order(oid).lines[0].picks == ()


# ---------------------------------------------------------------------------------------------- short pick
async def test_short_pick_substitutes_by_preference_and_the_notice_reaches_smtp(shop: Shop) -> None:
    async with connect(ws_url(shop.hub)) as picker:
        await ready_picker(picker)
        oid = await accepted_order(
            shop, picker, [{"product_id": "FLW-004", "quantity": 2}], "short-1", substitution="similar"
        )
        await picker.request("claim_order", order_id=oid)
        tag = shop.packages("FLW-004")[0].tag
        await picker.request("pick_scan", order_id=oid, data=tag)
        answer = await picker.request("short_line", order_id=oid, line=1)
        assert answer["short_by"] == 1
        cands = answer["candidates"]
        assert cands and all(c["id"].startswith("FLW-0") for c in cands)  # flower, sold each, same type
        sub = answer["substituted"]
        assert sub == cands[0]["id"]
        o = shop.order(oid)
        assert o.lines[0].short and o.lines[0].reserved == 1 and o.lines[0].substituted_by == 2
        assert o.lines[1].product_id == sub and o.lines[1].reserved == 1
        assert shop.reservations()[sub].orders[oid].unbound == 1
        sub_tag = shop.packages(sub)[0].tag
        await picker.request("pick_scan", order_id=oid, data=sub_tag)
        await picker.request("order_ready", order_id=oid)
    msgs = await wait_for(lambda: [m for m in shop.inbox.messages if "substituted" in m["Subject"]])
    body = msgs[0].get_payload()
    assert oid in msgs[0]["Subject"] and "Sour Diesel" in body and "->" in body


async def test_short_pick_without_preference_waits_for_staff_to_confirm(shop: Shop) -> None:
    async with connect(ws_url(shop.hub)) as picker:
        await ready_picker(picker)
        oid = await accepted_order(
            shop, picker, [{"product_id": "FLW-002", "quantity": 1}], "short-2", substitution="none"
        )
        await picker.request("claim_order", order_id=oid)
        answer = await picker.request("short_line", order_id=oid, line=1)
        assert answer["substituted"] is None and answer["candidates"]
        await refused(picker.request("order_ready", order_id=oid), "nothing_picked")
        await refused(
            picker.request("substitute", order_id=oid, line=1, product_id="EDI-001"), "not_a_candidate"
        )
        chosen = answer["candidates"][-1]["id"]
        await picker.request("substitute", order_id=oid, line=1, product_id=chosen)
        assert shop.order(oid).lines[1].product_id == chosen


# ---------------------------------------------------------------------------------------------- expiry
async def test_expiry_releases_reservations(shop: Shop) -> None:
    async with connect(ws_url(shop.hub)) as picker:
        await ready_picker(picker)
        oid = await accepted_order(shop, picker, [{"product_id": "PRE-004", "quantity": 2}], "exp-1")
        await picker.request("claim_order", order_id=oid)
        await picker.request("pick_scan", order_id=oid, data=shop.packages("PRE-004")[0].tag)
    assert "PRE-004" in shop.reservations()
    assert await expire_due(shop.hub, datetime.now(UTC) + timedelta(hours=1)) == []  # not due yet
    assert await expire_due(shop.hub, datetime.now(UTC) + timedelta(hours=26)) == [oid]
    assert shop.order(oid).state == "expired" and shop.reservations() == {}
    # the running hub expires on its own, too: an order promised long ago
    past = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    r = await shop.post_order(
        order_body("exp-2", [{"product_id": "PRE-004", "quantity": 1}], promised_at=past)
    )
    late = r.json()["order_id"]
    await wait_for(lambda: shop.order(late).state == "expired")
    await wait_for(
        lambda: (
            [e["status"] for e in shop.receiver.events if e["order_id"] == late] == ["received", "expired"]
        )
    )
    kinds = [
        e.kind for e in ostore.deliveries(shop.hub.store, "notices", unsent_only=False) if e.order_id == oid
    ]
    assert "cancelled" in kinds


async def test_callbacks_retry_and_arrive_once_in_order(shop: Shop) -> None:
    shop.receiver.fail_next = 3
    async with connect(ws_url(shop.hub)) as picker:
        await ready_picker(picker)
        oid = await accepted_order(shop, picker, [{"product_id": "PRE-005", "quantity": 1}], "cb-1")
        await picker.request("cancel_order", order_id=oid, reason="customer called")
    await wait_for(lambda: len(shop.receiver.events) >= 3, timeout=20)
    assert [e["status"] for e in shop.receiver.events] == ["received", "accepted", "cancelled"]
    assert [h["x-storehub-event"] for h in shop.receiver.headers] == ["1", "2", "3"]
    assert shop.reservations() == {}


async def test_an_order_whose_product_ran_out_is_flagged_on_the_queue_and_at_opening(shop: Shop) -> None:
    from hub.orders.views import queue_view, readiness_checks

    hub = shop.hub
    pkgs = shop.packages("EDI-006")
    r = await shop.post_order(order_body("oos-1", [{"product_id": "EDI-006", "quantity": 2}]))
    oid = r.json()["order_id"]
    assert readiness_checks(hub)[0].status == "ok"

    def hold_all(txn: Any) -> None:
        for p in pkgs:
            inventory.put_package(txn, hub.store, msgspec.structs.replace(p, status="on_hold"))

    await hub.writer.write(hold_all)  # no order changed: the queue sees the store's write by itself
    view = next(q for q in queue_view(hub) if q["id"] == oid)
    assert view["flags"] == ["out_of_stock"]
    check = readiness_checks(hub)[0]
    assert check.status == "warn" and oid in check.message
    async with connect(ws_url(hub)) as picker:
        await ready_picker(picker)
        await refused(picker.request("accept_order", order_id=oid), "out_of_stock")
    async with connect(ws_url(hub)) as office:
        token = await ready(office, "OFFICE", "maria", drawer=False)
        async with httpx.AsyncClient(
            base_url=shop.http, headers={"authorization": f"Bearer {token}"}
        ) as http:
            notices = (await http.get("/api/orders/notices")).json()["notices"]
            orders = (await http.get("/api/orders")).json()["orders"]
            readiness = (await http.get("/api/backoffice/readiness")).json()
    assert any(o["id"] == oid and o["flags"] == ["out_of_stock"] for o in orders)
    assert any(c["name"] == "Online orders" and c["status"] == "warn" for c in readiness["checks"])
    assert isinstance(notices, list)


async def test_metrics_count_orders_by_state_and_time_the_picks(shop: Shop) -> None:
    async with connect(ws_url(shop.hub)) as picker:
        await ready_picker(picker)
        await shop.post_order(order_body("m-1", [{"product_id": "PRE-001", "quantity": 1}]))
        oid = await accepted_order(shop, picker, [{"product_id": "PRE-002", "quantity": 1}], "m-2")
        await picker.request("claim_order", order_id=oid)
        await picker.request("pick_scan", order_id=oid, data=shop.packages("PRE-002")[0].tag)
        await picker.request("order_ready", order_id=oid)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{shop.http}/metrics")).text
    lines = dict(ln.rsplit(" ", 1) for ln in text.splitlines() if ln and not ln.startswith("#"))
    assert float(lines['storehub_orders{state="received"}']) == 1
    assert float(lines['storehub_orders{state="ready"}']) == 1
    assert float(lines["storehub_orders_oldest_unaccepted_seconds"]) > 0
    assert float(lines["storehub_orders_past_promised"]) == 0
    assert float(lines["storehub_order_pick_seconds_count"]) == 1
    # a handheld asleep in its cradle is no register down
    assert not any(k.startswith('storehub_register_connected{register="P1"') for k in lines)
    assert 'storehub_register_connected{register="R1"}' in lines


async def test_intake_answers_the_limits_pre_check_for_a_customer_the_store_knows(shop: Shop) -> None:
    known = shop.hub.services.demo.store.customer("adult").customer
    lines = [{"product_id": "FLW-001", "quantity": 9}]  # 9 x 3.5 g = 31.5 g of flower
    over = await shop.post_order(
        order_body(
            "lim-1",
            lines,
            customer={"name": "J R", "birth_date": "1990-01-01", "store_customer_id": known.id},
        )
    )
    assert over.status_code == 201
    limits = over.json()["limits"]
    assert limits["checked"] is True and limits["allowed"] is False
    assert limits["exceeded"] and "28.5" in limits["exceeded"][0]
    fine = await shop.post_order(
        order_body(
            "lim-2",
            [{"product_id": "FLW-001", "quantity": 2}],
            customer={"name": "J R", "birth_date": "1990-01-01", "store_customer_id": known.id},
        )
    )
    assert fine.json()["limits"] == {"checked": True, "allowed": True, "exceeded": []}
    stranger = await shop.post_order(order_body("lim-3", lines))
    assert stranger.json()["limits"] == {"checked": False}
