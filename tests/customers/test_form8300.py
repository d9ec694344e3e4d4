"""The Form 8300 worksheet from a cash flag: prefilled with what the store has (amounts, dates, receipts,
the business, the customer's date of birth, ID issuer and, with their consent, name), everything else
marked for the compliance officer; the flag's status is open, then filed, or dismissed with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio

from hub.backoffice.cash_flags import CashWatch
from hub.client import connect
from hub.domain.form8300 import status_of
from tests.backoffice.test_cash_flags_store import cash_sale, store_sales
from tests.conftest import ws_url
from tests.customers.conftest import Shop, licence, ready


async def test_worksheet_and_status(shop: Shop) -> None:
    hub = shop.hub
    watch: CashWatch = hub.services.cash_watch
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as office:
            token = await ready(office, "OFFICE", "maria", drawer=False)
            async with shop.rest(token) as http:
                c = (
                    await http.post(
                        "/api/customers/enrol",
                        json={
                            "licence": licence("C7770000001", given="JAMIE", family="FOX"),
                            "consent_profile": True,
                        },
                    )
                ).json()["customer"]
                now = datetime.now(UTC)
                first = cash_sale(hub, 9101, c["id"], 990_000, now - timedelta(hours=5))
                second = cash_sale(hub, 9102, c["id"], 20_000, now - timedelta(hours=1))
                await store_sales(hub, [first, second])
                [flag] = await watch.check(9102)
                html = (await http.get(f"/api/backoffice/form8300/{flag.flag_id}")).text
                assert "Form 8300 worksheet" in html and 'data-status="open"' in html
                assert "Fox" in html and "Jamie" in html and c["birth_date"] in html
                assert "$10,100.00" in html and "9101, 9102" in html
                assert hub.config.store.licence in html and "Test Store" in html
                assert "Taxpayer identification number" in html and "for the compliance officer" in html
                w = (await http.get(f"/api/backoffice/form8300/{flag.flag_id}?format=json")).json()
                assert "5" in w["for_officer"] and "36" in w["for_officer"] and "13c" in w["for_officer"]
                crossed = second.receipt.sold_at.astimezone(hub.config.zone).date()
                assert w["due_by"] == (crossed + timedelta(days=15)).isoformat()
                # dismissed with a reason ...
                await office.request(
                    "review_cash_flag",
                    flag_id=flag.flag_id,
                    decision="no_action",
                    note="Wholesale buyer, reported by the distributor",
                )
                rows = (await http.get("/api/backoffice/cash-flags-8300")).json()["flags"]
                assert [(r["status"], r["status_reason"]) for r in rows] == [
                    ("dismissed", "Wholesale buyer, reported by the distributor")
                ]
                # ... or filed
                await office.request(
                    "review_cash_flag",
                    flag_id=flag.flag_id,
                    decision="filed_8300",
                    note="e-filed, BSA id 31000123456789",
                )
                w = (await http.get(f"/api/backoffice/form8300/{flag.flag_id}?format=json")).json()
                assert w["status"] == "filed" and w["status_reason"].startswith("e-filed")
                # the worksheet is a manager's
            async with connect(ws_url(hub)) as reg:
                btoken = await ready(reg, "R1", "ana", drawer=False)
                async with shop.rest(btoken) as http:
                    assert (await http.get(f"/api/backoffice/form8300/{flag.flag_id}")).status_code == 403


def test_status_follows_the_last_review() -> None:
    assert status_of([]) == ("open", "")
