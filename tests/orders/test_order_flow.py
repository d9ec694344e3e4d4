"""An online order end to end over real HTTP and WebSockets: signed intake, acceptance, picking by scanning on
the handheld (a unit line and a weighed bulk line), ready with its bag label, pickup at the register with the
customer's ID, the sale reaching the Metrc sandbox; inventory, reservations, callbacks and notices exact."""

from __future__ import annotations

import trio

from hub.client import ClientError, connect
from hub.orders import store as ostore
from hub.sale import inventory
from tests.conftest import ws_url
from tests.orders.conftest import Shop, order_body, ready_picker, wait_for
from tests.state.conftest import ready


def adult(shop: Shop) -> dict[str, str]:
    """The demo's adult customer as the web shop knows them (the demo dates move with the calendar)."""
    c = shop.hub.services.demo.store.customer("adult")
    name = f"{c.given_name.title()} {c.family_name.title()}"
    return {
        "name": name,
        "birth_date": c.customer.birth_date.isoformat(),
        "email": "jordan@example.com",
        "phone": "+15555550111",
    }


async def test_intake_pick_ready_pickup_sale_at_the_sandbox(shop: Shop) -> None:
    hub = shop.hub
    pre = next(p for p in shop.packages("PRE-001") if p.quantity >= 3)
    bulk = next(p for p in shop.packages("FLW-B14") if p.quantity >= 5000)
    menu0 = {p["id"]: p for p in (await shop.menu()).json()["products"]}
    r = await shop.post_order(
        order_body(
            "shop-1001",
            [{"product_id": "PRE-001", "quantity": 2}, {"sku": "FLW-B14", "weight_mg": 3500}],
            customer=adult(shop),
        )
    )
    assert r.status_code == 201, r.text
    answer = r.json()
    oid = answer["order_id"]
    assert answer["status"] == "received" and all(ln["ok"] for ln in answer["lines"])
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as picker, connect(ws_url(hub)) as register:
            await ready_picker(picker)
            snap = await picker.wait_snapshot(lambda s: any(q["id"] == oid for q in s["picker"]["queue"]))
            assert snap["state"]["picker"]["queue"][0]["state"] == "received"
            await picker.request("accept_order", order_id=oid)
            res = shop.reservations()
            assert res["PRE-001"].orders[oid].unbound == 2 and res["FLW-B14"].orders[oid].unbound == 3500
            menu1 = {p["id"]: p for p in (await shop.menu()).json()["products"]}
            assert menu1["PRE-001"]["available"] == menu0["PRE-001"]["available"] - 2
            assert menu1["FLW-B14"]["available"] == menu0["FLW-B14"]["available"] - 3500
            await picker.request("claim_order", order_id=oid)
            snap = await picker.wait_snapshot(lambda s: s["picker"]["holding"] is not None)
            pick_list = snap["state"]["picker"]["holding"]["pick_list"]
            assert [row["product_id"] for row in pick_list] == [
                "FLW-B14",
                "PRE-001",
            ]  # by category: flower first
            await picker.request("pick_scan", order_id=oid, data=pre.tag)
            done = await picker.request("pick_scan", order_id=oid, data=pre.tag)
            assert done["complete"] is True and done["picked"] == 2
            # the bulk line waits for a stable reading of the station's scale
            await picker.request("demo_scale", weight_mg=3510, motion=True)
            try:
                await picker.request("pick_scan", order_id=oid, data=bulk.tag)
                raise AssertionError("a reading in motion picked a bulk line")
            except ClientError as exc:
                assert exc.code == "scale_in_motion"
            await picker.request("demo_scale", weight_mg=3510, motion=False)
            weighed = await picker.request("pick_scan", order_id=oid, data=bulk.tag)
            assert weighed["picked"] == 3510 and weighed["complete"] is True
            ready_answer = await picker.request("order_ready", order_id=oid)
            zpl = ready_answer["label"]["zpl"]
            assert f"ORDER {oid}" in zpl and pre.tag in zpl and bulk.tag in zpl
            res = shop.reservations()
            assert res["PRE-001"].orders[oid].tags == {pre.tag: 2} and res["PRE-001"].orders[oid].unbound == 0
            assert res["FLW-B14"].orders[oid].tags == {bulk.tag: 3510}

            # pickup at the register: a wrong person is refused, the customer is served
            await ready(register, "R1", "maria")
            snap = await register.wait_snapshot(lambda s: any(o["id"] == oid for o in s["ready_orders"]))
            await register.request("scan", data=shop_demo(shop).customer("non_resident").id_scan)
            try:
                await register.request("recall_order", order_id=oid)
                raise AssertionError("another person's ID recalled the order")
            except ClientError as exc:
                assert exc.code == "wrong_customer"
            await register.request("end_customer")
            await register.request("scan", data=shop_demo(shop).customer("adult").id_scan)
            await register.request("recall_order", order_id=oid)
            snap = await register.wait_snapshot(
                lambda s: s["cart"] is not None and len(s["cart"]["lines"]) == 2
            )
            total = snap["state"]["cart"]["total_cents"]
            paid = await register.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
    number = paid["receipt_number"]
    o = shop.order(oid)
    assert o.state == "completed" and o.receipt_number == number
    assert shop.reservations() == {}
    assert inventory.package(hub.store, pre.tag).quantity == pre.quantity - 2  # type: ignore[union-attr]
    assert inventory.package(hub.store, bulk.tag).quantity == bulk.quantity - 3510  # type: ignore[union-attr]
    # the state's receipt: exactly once, with the picked packages and quantities
    await wait_for(lambda: all(e.state == "sent" for e in outbox(shop)), timeout=20)
    receipts = (await shop.admin.state())["receipts"]
    mine = [rc for rc in receipts if any(ln["package_label"] in (pre.tag, bulk.tag) for ln in rc["lines"])]
    assert len(mine) == 1
    got = {ln["package_label"]: ln["quantity"] for ln in mine[0]["lines"]}
    assert got == {pre.tag: 2, bulk.tag: 3.51}
    # the channel heard every change once, in order; the customer got the accepted and ready notices
    await wait_for(lambda: [e["status"] for e in shop.receiver.events][-1:] == ["completed"])
    statuses = [e["status"] for e in shop.receiver.events if e["order_id"] == oid]
    assert statuses == ["received", "accepted", "picking", "ready", "completed"]
    ids = [e["event_id"] for e in shop.receiver.events]
    assert ids == sorted(set(ids))
    await wait_for(lambda: len(shop.inbox.messages) >= 2)
    subjects = [m["Subject"] for m in shop.inbox.messages]
    assert any(f"Order {oid} accepted" in s for s in subjects)
    assert any(f"Order {oid} is ready" in s for s in subjects)
    assert all(m["To"] == "jordan@example.com" for m in shop.inbox.messages)
    kinds = [e.kind for e in ostore.deliveries(hub.store, "notices", unsent_only=False)]
    assert kinds.count("accepted") == 2 and kinds.count("ready") == 2  # e-mail and SMS (the sink)


def shop_demo(shop: Shop):  # type: ignore[no-untyped-def]
    return shop.hub.services.demo.store


def outbox(shop: Shop) -> list:  # type: ignore[type-arg]
    from hub.domain.outbox import OutboxEntry
    from hub.store.env import decode

    with shop.hub.store.read() as txn:
        return [decode(v, OutboxEntry) for _, v in txn.cursor(db=shop.hub.store.db("outbox"))]


async def test_curbside_is_completed_from_the_handheld_with_cash(shop: Shop) -> None:
    hub = shop.hub
    pre = next(p for p in shop.packages("PRE-006") if p.quantity >= 2)
    r = await shop.post_order(
        order_body(
            "curb-1", [{"product_id": "PRE-006", "quantity": 1}], customer=adult(shop), fulfilment="curbside"
        )
    )
    oid = r.json()["order_id"]
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as picker:
            await ready_picker(picker, staff="maria")
            await picker.request("open_drawer", counted={"B20": 5}, witness="tom", witness_pin="2222")
            await picker.request("accept_order", order_id=oid)
            await picker.request("claim_order", order_id=oid)
            await picker.request("pick_scan", order_id=oid, data=pre.tag)
            await picker.request("order_ready", order_id=oid)
            # at the car: the handheld recalls the order, scans the ID, takes cash
            await picker.request("recall_order", order_id=oid)
            await picker.request("scan", data=shop_demo(shop).customer("adult").id_scan)
            snap = await picker.wait_snapshot(lambda s: s["cart"] is not None and s["customer"] is not None)
            paid = await picker.request(
                "pay", tenders=[{"kind": "cash", "amount_cents": snap["state"]["cart"]["total_cents"]}]
            )
    o = shop.order(oid)
    assert o.state == "completed" and o.receipt_number == paid["receipt_number"]
    assert inventory.package(hub.store, pre.tag).quantity == pre.quantity - 1  # type: ignore[union-attr]
    assert "PRE-006" not in shop.reservations()
