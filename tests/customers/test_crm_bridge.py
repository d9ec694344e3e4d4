"""The CRM bridge against the sandbox's CRM endpoint over loopback HTTP: consented customers and their
sales arrive exactly once, in order, through an outage and through answers lost after the CRM stored the
event (then the hub asks before it sends again); each request is signed; a customer who did not consent
to marketing is never sent."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import trio

from actors.crm import CrmActor
from drivers.crm_webhook import CrmWebhook
from hub.client import connect
from hub.crm import outbox_store as crm_store
from hub.domain.crm import request_for, signature
from hub.domain.outbox import OutboxEntry
from hub.state_channel.feature import fast_retry_policy
from hub.store.env import encode, put
from hub.store.keys import u64
from sandbox.server import SandboxConfig, serve
from tests.conftest import ws_url
from tests.customers.conftest import CRM_SECRET, Shop, licence, ready, sell
from tests.customers.test_customers_core import _event


async def test_sales_reach_the_crm_exactly_once_through_an_outage(crm_shop: Shop) -> None:
    hub, sbx = crm_shop.hub, crm_shop.sandbox
    assert sbx is not None
    admin = httpx.AsyncClient(base_url=sbx.url, timeout=5)
    crm = sbx.app.crm
    consented = licence("C5550000001", given="DANA", family="REYES")
    silent = licence("C5550000002", given="SAM", family="LOWE")
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as reg:
            token = await ready(reg, "R1", "ana")
            async with crm_shop.rest(token) as http:
                c = (
                    await http.post(
                        "/api/customers/enrol",
                        json={
                            "licence": consented,
                            "email": "dana@example.com",
                            "phone": "9165550177",
                            "consent_profile": True,
                            "consent_marketing": True,
                            "consent_sms": False,
                        },
                    )
                ).json()["customer"]
                quiet = (
                    await http.post(
                        "/api/customers/enrol",
                        json={
                            "licence": silent,
                            "consent_profile": True,
                            "consent_marketing": False,
                        },
                    )
                ).json()["customer"]
            while not crm.received:
                await trio.sleep(0.05)
            # the CRM goes down: the counter keeps selling
            await admin.put("/_sandbox/faults", json={"outage": True})
            tags = [p.tag for p in crm_shop.packages("PRE-", 3)]
            receipts = []
            for tag in tags[:2]:
                receipts.append((await sell(reg, consented, tag))["receipt_number"])
            receipts.append((await sell(reg, silent, tags[2]))["receipt_number"])
            while sbx.app.faults.outage_refusals < 1:
                await trio.sleep(0.05)
            # it comes back, but loses every second answer after storing the request
            await admin.put(
                "/_sandbox/faults", json={"outage": False, "drop_every": 2, "drop_methods": ["POST"]}
            )
            while any(e.state != "sent" for e in crm_store.unsent(hub.store)):
                await trio.sleep(0.05)
            assert sbx.app.faults.dropped >= 1  # an answer really was lost after the CRM stored it
        async with connect(ws_url(hub)) as office:
            mtoken = await ready(office, "OFFICE", "maria", drawer=False)
            async with crm_shop.rest(mtoken) as http:
                checks = (await http.get("/api/backoffice/readiness")).json()["checks"]
                crm_check = next(c for c in checks if c["name"] == "CRM bridge")
                assert crm_check["status"] == "ok" and crm_check["message"].startswith("0 event")
    await admin.aclose()
    accepted = [r for r in crm.received if r["accepted"]]
    counts = Counter(r["event_id"] for r in accepted)
    licence_no = hub.config.store.licence
    sale_events = {f"{licence_no}:sale:{n}" for n in receipts[:2]}
    # every event exactly once; the sales of the customer without marketing consent never left
    assert all(n == 1 for n in counts.values()), counts
    assert sale_events <= set(counts)
    assert f"{licence_no}:sale:{receipts[2]}" not in counts
    assert not any(
        r["body"].get("customer", {}) and r["body"]["customer"]["id"] == quiet["id"] for r in accepted
    )
    # in order for the customer: the upsert before the sales, the sales in receipt order
    mine = [
        r["event_id"]
        for r in accepted
        if c["id"] in (r["body"].get("customer") or {}).get("id", "")
        or (r["body"].get("sale") or {}).get("customer_id") == c["id"]
    ]
    assert mine[0].startswith(f"{licence_no}:customer:") and mine[1:] == sorted(
        sale_events, key=lambda e: int(e.rsplit(":", 1)[1])
    )
    # the generic documented shape, signed with the shared secret
    sale = next(r for r in accepted if r["event_id"] in sale_events)
    body = sale["body"]
    assert body["schema"] == "storehub.crm.v1" and body["type"] == "sale.completed"
    assert body["sale"]["customer_id"] == c["id"] and body["sale"]["lines"][0]["total_cents"] > 0
    assert all(r["signature_valid"] for r in accepted)
    upsert = next(r["body"]["customer"] for r in accepted if r["body"]["type"] == "customer.upserted")
    assert upsert["email"] == "dana@example.com" and upsert["phone"] == "+19165550177"
    assert upsert["consents"] == {"marketing": True, "sms": False}
    assert signature(CRM_SECRET, 1, b"{}").startswith("sha256=")


async def test_a_bad_secret_is_refused_and_waits_for_a_person(crm_shop: Shop) -> None:
    hub, sbx = crm_shop.hub, crm_shop.sandbox
    assert sbx is not None
    sbx.app.crm.secret = "another secret"
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as reg:
            token = await ready(reg, "R1", "ana", drawer=False)
            async with crm_shop.rest(token) as http:
                await http.post(
                    "/api/customers/enrol",
                    json={
                        "licence": licence(),
                        "email": "x@example.com",
                        "consent_profile": True,
                        "consent_marketing": True,
                    },
                )
        while not sbx.app.crm.received:
            await trio.sleep(0.05)
        while not any(e.last_error_code == "crm_auth" for e in crm_store.unsent(hub.store)):
            await trio.sleep(0.05)
    assert not any(r["accepted"] for r in sbx.app.crm.received)


async def test_an_event_in_flight_at_a_crash_is_looked_up_not_sent_twice(
    shop: Shop, nursery: trio.Nursery, tmp_path: Any
) -> None:
    """The hub stopped after the CRM stored an event but before the hub recorded it sent: at the next start
    the event is "unknown", the CRM is asked, and it is not posted again."""
    hub = shop.hub
    sbx = await nursery.start(serve, SandboxConfig(data_dir=tmp_path / "sbx-crm"))
    sbx.app.crm.secret = CRM_SECRET
    c = next(x for x in hub.services.demo.store.customers if x.role == "adult").customer
    now = datetime.now(UTC)
    event = crm_store.customer_event(c, licence="L", store_name="S", now=now, seq_hint=1)

    def fn(txn: Any) -> Any:
        entry = crm_store.enqueue(txn, hub.store, event, c.id, now)
        put(txn, hub.store, "crm_outbox", u64(entry.seq), msgspec.structs.replace(entry, state="in_flight"))
        return entry

    entry = await hub.writer.write(fn)
    # the request had reached the CRM before the crash
    req = request_for(event, style="generic", secret=CRM_SECRET, now=now.timestamp())
    async with httpx.AsyncClient() as http:
        assert (
            await http.post(f"{sbx.url}/crm/generic", content=req.body, headers=req.headers)
        ).status_code == 200
    actor = CrmActor(
        hub,
        lambda: CrmWebhook(
            f"{sbx.url}/crm/generic", style="generic", secret=CRM_SECRET, decode_event=crm_store.event_of
        ),
        retry_policy=fast_retry_policy(),
        poll_seconds=0.1,
    )
    with trio.fail_after(10):
        await nursery.start(actor.run)
        while any(e.seq == entry.seq for e in crm_store.unsent(hub.store)):
            await trio.sleep(0.05)
    assert [r["event_id"] for r in sbx.app.crm.received] == [event.event_id]  # posted once, never again
    sbx.stop()


async def test_springbig_and_alpineiq_styles_reach_their_operations(
    nursery: trio.Nursery, tmp_path: Any
) -> None:
    sbx = await nursery.start(serve, SandboxConfig(data_dir=tmp_path / "sbx-styles"))
    sbx.app.crm.secret = CRM_SECRET
    now = datetime.now(UTC)
    entry = OutboxEntry(
        seq=1,
        kind="sale",
        licence="crm",
        idempotency_key="L:sale:42",
        payload=encode(_event()),
        package_labels=("customer:c1",),
        created_at=now,
        next_attempt_at=now,
    )
    with trio.fail_after(10):
        for style, name, operation in (
            ("springbig", "sb", "visits"),
            ("alpineiq", "aiq", "createUpdateSale"),
        ):
            hook = CrmWebhook(
                f"{sbx.url}/crm/{name}",
                style=style,
                secret=CRM_SECRET,
                api_key="k-123",
                decode_event=crm_store.event_of,
            )
            assert (await hook.send(entry)).outcome == "sent"
            # these services have no "did it arrive" question: a lost answer means a re-send, which they
            # take as an update of the same pos_id
            assert (await hook.lookup(entry)).outcome == "not_found"
            await hook.aclose()
            got = sbx.app.crm.received[-1]
            assert (got["name"], got["operation"], got["signature_valid"], got["api_key"]) == (
                name,
                operation,
                True,
                "k-123",
            )
            assert got["body"]["visit"]["pos_id"] == "L:sale:42"
    sbx.stop()


async def test_the_crm_backlog_is_exported_as_a_count_and_the_oldest_entrys_time(crm_shop: Shop) -> None:
    """/metrics says how many CRM events wait and since when (0 and 0 at start and once delivered); an
    outage grows the count while the bridge is paused, as the state channel's backlog does."""
    from prometheus_client.parser import text_string_to_metric_families

    hub, sbx = crm_shop.hub, crm_shop.sandbox
    assert sbx is not None
    admin = httpx.AsyncClient(base_url=sbx.url, timeout=5)
    names = ("storehub_crm_outbox_pending", "storehub_crm_outbox_oldest_pending_timestamp_seconds")

    async def scrape() -> tuple[float, float]:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{hub.http_port}/metrics")).text
        found = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        return found[names[0]], found[names[1]]

    with trio.fail_after(60):
        assert await scrape() == (0, 0)  # exported at 0 from the start
        await admin.put("/_sandbox/faults", json={"outage": True})
        async with connect(ws_url(hub)) as reg:
            token = await ready(reg, "R1", "ana")
            buyer = licence("C5550000009", given="RITA", family="OKAFOR")
            async with crm_shop.rest(token) as http:
                enrolled = await http.post(
                    "/api/customers/enrol",
                    json={
                        "licence": buyer,
                        "email": "rita@example.com",
                        "consent_profile": True,
                        "consent_marketing": True,
                    },
                )
                assert enrolled.status_code == 200, enrolled.text
            await sell(reg, buyer, crm_shop.packages("PRE-", 1)[0].tag)
        waiting = crm_store.unsent(hub.store)
        assert len(waiting) >= 2  # the customer and the sale, held by the outage
        expected = (float(len(waiting)), min(e.created_at for e in waiting).timestamp())
        while (seen := await scrape()) != expected:
            await trio.sleep(0.05)
        assert seen[1] > 0
        await admin.put("/_sandbox/faults", json={"outage": False})
        while await scrape() != (0, 0):
            await trio.sleep(0.05)
    assert not crm_store.unsent(hub.store)
    await admin.aclose()
