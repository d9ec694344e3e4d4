"""Customer records over a real hub: enrol from a licence scan with consent, find by phone, name and
licence, the purchase history shows the sale, loyalty is booked in the sale's ledger, the retention purge
removes an expired record and audits it, and a customer without SMS consent gets no SMS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import trio

from hub.client import connect
from hub.customers import records
from hub.domain.catalog import Customer
from hub.sale import inventory as inv
from tests.conftest import ws_url
from tests.customers.conftest import Shop, licence, ready, sell


async def test_enrol_find_history_loyalty(shop: Shop) -> None:
    hub = shop.hub
    scan = licence()
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as reg:
            token = await ready(reg, "R1", "ana")
            async with shop.rest(token) as http:
                pre = (await http.post("/api/customers/licence", json={"licence": scan})).json()
                assert (
                    pre["given_name"] == "Alexis" and pre["family_name"] == "Moreno" and pre["known"] is None
                )
                r = await http.post(
                    "/api/customers/enrol",
                    json={
                        "licence": scan,
                        "phone": "(916) 555-0142",
                        "email": "alexis@example.com",
                        "consent_profile": True,
                        "consent_marketing": False,
                        "consent_sms": True,
                    },
                )
                assert r.status_code == 200, r.text
                c = r.json()["customer"]
                assert c["name"] == "Alexis Moreno"
                assert c["consents"] == {"profile": True, "marketing": False, "sms": True}
                # SMS consent keeps the phone; no marketing consent: the e-mail is not kept
                assert c["phone"] == "+19165550142" and c["email"] == ""
                history = c["consent_history"]
                assert {h["kind"] for h in history} == {"profile", "marketing", "sms"}
                assert all(h["staff"] == "ana" and h["where"] == "R1" and h["text"] for h in history)
                cid = c["id"]
                # found by phone (any writing of it), by name, and by the licence scan
                for phone in ("916-555-0142", "+1 916 555 0142"):
                    found = (await http.post("/api/customers/find", json={"phone": phone})).json()[
                        "customers"
                    ]
                    assert [f["id"] for f in found] == [cid]
                assert [
                    f["id"]
                    for f in (await http.post("/api/customers/find", json={"name": "moreno al"})).json()[
                        "customers"
                    ]
                ] == [cid]
                assert [
                    f["id"]
                    for f in (await http.post("/api/customers/find", json={"licence": scan})).json()[
                        "customers"
                    ]
                ] == [cid]
                assert (await http.post("/api/customers/find", json={"phone": "916 555 0199"})).json()[
                    "customers"
                ] == []
            # the phone number is kept as a keyed hash for finding; the ID number never in clear
            stored = records.customer(hub.store, cid)
            assert (
                stored is not None
                and stored.phone_hash
                and "9911220033" not in msgspec.json.encode(stored).decode()
            )
            # a sale: the history shows it, loyalty is booked in the ledger with the sale
            tag = shop.packages("PRE-")[0].tag
            paid = await sell(reg, scan, tag)
        async with connect(ws_url(hub)) as office:
            mtoken = await ready(office, "OFFICE", "maria", drawer=False)
            async with shop.rest(mtoken) as http:
                prof = (await http.get(f"/api/customers/{cid}")).json()["customer"]
                assert prof["history"][0]["receipt_number"] == paid["receipt_number"]
                assert prof["history"][0]["lines"][0]["package_tag"] == tag
                earned = [e for e in prof["loyalty_ledger"] if e["reason"] == "earned"]
                assert earned and earned[0]["receipt_number"] == paid["receipt_number"]
                assert prof["points"] == earned[0]["balance"] == earned[0]["delta"]
                assert prof["last_visit_at"] is not None
    assert shop.audit("customer_enrolled")[0]["customer"] == cid
    # the audit log names the customer by id only: no name, phone or e-mail
    text = repr(shop.audit("customer_enrolled"))
    assert "Moreno" not in text and "555" not in text


async def test_enrol_refused_without_profile_consent(shop: Shop) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(shop.hub)) as reg:
            token = await ready(reg, "R1", "ana", drawer=False)
            async with shop.rest(token) as http:
                r = await http.post(
                    "/api/customers/enrol",
                    json={"licence": licence(), "phone": "9165550142", "consent_profile": False},
                )
                assert r.status_code == 400 and r.json()["code"] == "no_consent"
    assert inv.customer_by_hash(shop.hub.store, "x") is None
    assert shop.audit("customer_enrolled") == []


async def test_no_sms_without_sms_consent(crm_shop: Shop) -> None:
    hub, sbx = crm_shop.hub, crm_shop.sandbox
    assert sbx is not None
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as reg:
            token = await ready(reg, "R1", "ana", drawer=False)
            async with crm_shop.rest(token) as http:
                # marketing yes, SMS no: the phone is kept for marketing, but no text is ever sent
                c = (
                    await http.post(
                        "/api/customers/enrol",
                        json={
                            "licence": licence(),
                            "phone": "9165550142",
                            "email": "a@example.com",
                            "consent_profile": True,
                            "consent_marketing": True,
                            "consent_sms": False,
                        },
                    )
                ).json()["customer"]
                r = await http.post(f"/api/customers/{c['id']}/sms", json={"text": "20% off today"})
                assert r.status_code == 400 and r.json()["code"] == "no_sms_consent"
                # with consent given later, the text goes to the CRM, once
                c2 = (
                    await http.post(
                        f"/api/customers/{c['id']}",
                        json={"consents": {"sms": True}, "reason": "customer asked"},
                    )
                ).json()["customer"]
                assert c2["may_text"] is True
                ok = await http.post(f"/api/customers/{c['id']}/sms", json={"text": "Your order is ready"})
                assert ok.status_code == 200, ok.text
                # and withdrawn again: refused again
                await http.post(
                    f"/api/customers/{c['id']}", json={"consents": {"sms": False}, "reason": "replied STOP"}
                )
                assert (await http.post(f"/api/customers/{c['id']}/sms", json={"text": "x"})).json()[
                    "code"
                ] == "no_sms_consent"
        while not any(r["body"].get("type") == "message.sms" for r in sbx.app.crm.received):
            await trio.sleep(0.05)
        await trio.sleep(0.3)
    texts = [r for r in sbx.app.crm.received if r["body"].get("type") == "message.sms"]
    assert len(texts) == 1 and texts[0]["body"]["message"]["text"] == "Your order is ready"
    # the upserts carry sms consent as given at each time, and never an SMS before the consent
    upserts = [
        r["body"]["customer"] for r in sbx.app.crm.received if r["body"].get("type") == "customer.upserted"
    ]
    assert [u["consents"]["sms"] for u in upserts] == [False, True, False]


async def test_purge_removes_expired_record_and_audits(shop: Shop) -> None:
    hub = shop.hub
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as reg:
            token = await ready(reg, "R1", "ana", drawer=False)
            async with shop.rest(token) as http:
                old = (
                    await http.post(
                        "/api/customers/enrol",
                        json={
                            "licence": licence("C1000000001", given="OLD"),
                            "phone": "9165550101",
                            "consent_profile": True,
                        },
                    )
                ).json()["customer"]
                fresh = (
                    await http.post(
                        "/api/customers/enrol",
                        json={"licence": licence("C1000000002", given="NEW"), "consent_profile": True},
                    )
                ).json()["customer"]
        days = hub.services.sale.jurisdiction.check_in.retention.profile_days
        assert days == 2555  # CA: 4 CCR 15037, seven years
        # the old customer's last visit was longer ago than the retention period
        long_ago = datetime.now(UTC) - timedelta(days=days + 1)

        def age(txn: object) -> None:
            c = records.customer(hub.store, old["id"])
            assert c is not None
            inv.put_customer(
                txn, hub.store, msgspec.structs.replace(c, enrolled_at=long_ago, last_visit_at=long_ago)
            )

        await hub.writer.write(age)
        async with connect(ws_url(hub)) as office:
            mtoken = await ready(office, "OFFICE", "maria", drawer=False)
            async with shop.rest(mtoken) as http:
                out = (await http.post("/api/customers/purge", json={})).json()
                assert [r["customer"] for r in out["removed"]] == [old["id"]]
                assert (await http.get(f"/api/customers/{old['id']}")).status_code == 404
                assert (await http.post("/api/customers/find", json={"phone": "9165550101"})).json()[
                    "customers"
                ] == []
                assert (await http.get(f"/api/customers/{fresh['id']}")).status_code == 200
    purged = shop.audit("customer_purged")
    assert len(purged) == 1 and purged[0]["customer"] == old["id"]
    assert purged[0]["retention_days"] == 2555 and purged[0]["jurisdiction"] == "CA"
    assert purged[0]["last_activity"].startswith(long_ago.date().isoformat())
    assert shop.audit("customer_purge_run")[0]["removed"] == 1
    assert records.customer(hub.store, old["id"]) is None
    assert isinstance(records.customer(hub.store, fresh["id"]), Customer)


async def test_manager_merges_duplicates(shop: Shop) -> None:
    hub = shop.hub
    first, second = licence("C2220000001"), licence("C2220000002")  # same person, a renewed licence
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as reg, connect(ws_url(hub)) as office:
            token = await ready(reg, "R1", "ana")
            mtoken = await ready(office, "OFFICE", "maria", drawer=False)
            async with shop.rest(token) as http:
                a = (
                    await http.post("/api/customers/enrol", json={"licence": first, "consent_profile": True})
                ).json()["customer"]
                b = (
                    await http.post(
                        "/api/customers/enrol",
                        json={
                            "licence": second,
                            "consent_profile": True,
                            "phone": "9165550160",
                            "consent_sms": True,
                        },
                    )
                ).json()["customer"]
                paid = await sell(reg, second, shop.packages("PRE-")[0].tag)
                # a budtender may not merge
                r = await http.post(
                    "/api/customers/merge",
                    json={"keep": a["id"], "duplicate": b["id"], "reason": "same person"},
                )
                assert r.status_code == 403
            async with shop.rest(mtoken) as http:
                r = await http.post(
                    "/api/customers/merge",
                    json={"keep": a["id"], "duplicate": b["id"], "reason": "renewed licence"},
                )
                assert r.status_code == 200, r.text
                merged = r.json()["customer"]
                assert merged["phone"] == "+19165550160" and merged["points"] > 0
                assert merged["history"][0]["receipt_number"] == paid["receipt_number"]
                # the duplicate's licence and phone find the kept record
                found = (await http.post("/api/customers/find", json={"licence": second})).json()["customers"]
                assert [f["id"] for f in found] == [a["id"]]
                found = (await http.post("/api/customers/find", json={"phone": "9165550160"})).json()[
                    "customers"
                ]
                assert [f["id"] for f in found] == [a["id"]]
    merged_audit = shop.audit("customers_merged")
    assert merged_audit[0]["kept"] == a["id"] and merged_audit[0]["merged"] == b["id"]
    assert merged_audit[0]["purchases_moved"] == 1 and merged_audit[0]["staff"] == "maria"


async def test_a_void_gives_the_points_back_in_the_ledger(shop: Shop) -> None:
    hub = shop.hub
    scan = licence("C6660000001")
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as reg:
            token = await ready(reg, "R1", "ana")
            async with shop.rest(token) as http:
                c = (
                    await http.post("/api/customers/enrol", json={"licence": scan, "consent_profile": True})
                ).json()["customer"]
            paid = await sell(reg, scan, shop.packages("FLW-00")[0].tag)
            earned = records.customer(hub.store, c["id"]).loyalty_points  # type: ignore[union-attr]
            assert earned > 0
            await reg.request(
                "void_sale",
                receipt_number=paid["receipt_number"],
                approval={"manager": "maria", "pin": "3333", "reason": "rang up twice"},
            )
    after = records.customer(hub.store, c["id"])
    assert after is not None and after.loyalty_points == 0 and after.lifetime_points == 0
    entries = records.loyalty_entries(hub.store, c["id"])
    assert [(e.reason, e.delta, e.balance) for e in entries] == [
        ("voided", -earned, 0),
        ("earned", earned, earned),
    ]
    assert all(e.receipt_number == paid["receipt_number"] for e in entries)


async def test_records_kept_before_enrolment_existed_are_found_by_name(shop: Shop) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(shop.hub)) as reg:
            token = await ready(reg, "R1", "ana", drawer=False)
            async with shop.rest(token) as http:
                found = (await http.post("/api/customers/find", json={"name": "jord"})).json()["customers"]
                assert [f["id"] for f in found] == ["demo-adult"]  # consented in the demo seed
                # the one who did not consent is not found by name, and has no profile to open
                assert (await http.post("/api/customers/find", json={"name": "casey"})).json()[
                    "customers"
                ] == []
                assert (await http.get("/api/customers/demo-visitor")).status_code == 404
