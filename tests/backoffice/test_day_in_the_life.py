"""A day in the life, over the live protocol: two drawers, cash and debit sales, a drop, a paid-out, a void
and a return, both drawers closed with one short by $5; the Z report ties out and shows the $5."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime

import httpx
import trio

from hub.app import Hub
from hub.backoffice import records
from hub.client import connect
from hub.domain.drawer import DrawerSession
from hub.domain.outbox import OutboxEntry
from hub.domain.state_payloads import StateReturn
from hub.sale import inventory
from hub.store.env import decode
from hub.store.keys import text
from tests.backoffice.office_helpers import FLOAT, approval, pieces, ready, sell
from tests.conftest import ws_url

FLOAT_CENTS = 26_000


def unit_package(hub: Hub, product_id: str) -> str:
    pkgs = inventory.packages_of(hub.store, product_id)
    return next(p.tag for p in pkgs if p.status == "active" and p.quantity > 5 and p.lab_testing == "passed")


async def test_day_in_the_life(office_hub: Hub) -> None:
    hub = office_hub
    adult = hub.services.demo.store.customer("adult").id_scan
    tag1, tag2 = unit_package(hub, "FLW-001"), unit_package(hub, "FLW-002")
    with trio.fail_after(40):
        async with (
            connect(ws_url(hub)) as r1,
            connect(ws_url(hub)) as r2,
            connect(ws_url(hub)) as office,
        ):
            await ready(r1, "R1", "ana")
            await ready(r2, "R2", "tom")
            await ready(office, "OFFICE", "maria")
            # morning: two drawers, each counted by the register's person, witnessed by the manager
            for c in (r1, r2):
                await c.request("open_drawer", counted=FLOAT, witness="maria", witness_pin="3333")

            s1 = await sell(r1, adult, tag1, 1, extra=37)  # cash with change
            s2 = await sell(r1, adult, tag2, 1, tender="debit")
            s3 = await sell(r2, adult, tag1, 1)
            s4 = await sell(r2, adult, tag2, 2)
            s5 = await sell(r1, adult, tag1, 1)
            assert hub.services.sale.terminals["demo-R1"].charges == [
                (s2["total_cents"], hub.services.sale.terminals["demo-R1"].charges[0][1])
            ]

            void = await r1.request(
                "void_sale", receipt_number=s5["receipt_number"], approval=approval("customer changed mind")
            )
            assert void["refund_cents"] == s5["total_cents"]
            drop = await r1.request(
                "drawer_movement",
                kind="drop",
                amount_cents=10_000,
                reason="midday drop to the safe",
                bag_number="BAG-0001",
                approval=approval("drop"),
            )
            assert set(drop) == {"session_id", "kind", "amount_cents"}  # no running balance
            await r2.request(
                "drawer_movement",
                kind="paid_out",
                amount_cents=1_250,
                reason="window cleaner, receipt in the safe",
                approval=approval("paid-out"),
            )
            ret = await r2.request(
                "return_items",
                receipt_number=s4["receipt_number"],
                lines={"1": 1},
                approval=approval("sealed unit, unopened"),
            )
            refund = ret["refund_cents"]
            assert 0 < refund < s4["total_cents"]

            # evening: R1 balances, R2 is short by $5
            expected_r1 = FLOAT_CENTS + s1["total_cents"] - 10_000
            expected_r2 = FLOAT_CENTS + s3["total_cents"] + s4["total_cents"] - 1_250 - refund
            c1 = await r1.request("blind_count", counted=pieces(expected_r1))
            assert c1["variance_cents"] == 0 and c1["needs_sign_off"] is False
            c2 = await r2.request("blind_count", counted=pieces(expected_r2 - 500))
            assert c2["expected_cents"] == expected_r2
            assert c2["variance_cents"] == -500 and c2["needs_sign_off"] is True
            # the budtender cannot sign off; the manager in the back office does, with a note
            await office.request(
                "sign_off_drawer", session_id=c2["session_id"], note="short $5: miscounted change at 14:10"
            )
            token = office.session_token

    r2_session = hub.store.get("drawers", text(c2["session_id"]), DrawerSession)
    assert r2_session is not None and r2_session.status == "closed"
    assert r2_session.sign_off is not None and r2_session.sign_off.manager_id == "maria"

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
        auth = {"authorization": f"Bearer {token}"}
        store = (await http.get("/api/reports/eod", headers=auth)).json()
        assert store["tie_out"]["ok"] is True, store["tie_out"]["sentence"]
        assert store["sales_count"] == 4 and store["voids_count"] == 1 and store["returns_count"] == 1
        assert store["drawer_variance_cents"] == -500
        assert store["tenders"]["debit"] == s2["total_cents"]
        assert store["tenders"]["cash"] == s1["total_cents"] + s3["total_cents"] + s4["total_cents"]
        assert store["total_cents"] == sum(s["total_cents"] for s in (s1, s2, s3, s4))
        assert store["refunds_by_tender"] == {"cash": refund}
        assert store["drawers_open"] == 0 and store["drawers_awaiting_sign_off"] == 0
        per_reg = {}
        for reg in ("R1", "R2"):
            per_reg[reg] = (await http.get(f"/api/reports/eod?register={reg}", headers=auth)).json()
            assert per_reg[reg]["tie_out"]["ok"] is True
        assert per_reg["R1"]["drawer_variance_cents"] == 0
        assert per_reg["R2"]["drawer_variance_cents"] == -500
        page = (await http.get("/api/reports/eod?format=html", headers=auth)).text
        assert "Ties out" in page and "-$5.00" in page and "<svg" in page
        rows = list(
            csv.reader(io.StringIO((await http.get("/api/reports/eod?format=csv", headers=auth)).text))
        )
        assert ["drawers", "variance_total", "-5.00", "USD"] in rows
        assert ["tie_out", "ok", "yes", ""] in rows
        # a budtender's token is refused
        assert (await http.get("/api/reports/eod")).status_code == 401

    # the returned unit went to quarantine, not back on the shelf; the state hears of it
    [stock] = records.returned_stock(hub.store)
    assert stock.tag == tag2 and stock.units == 1 and stock.status == "quarantined"
    with hub.store.read() as txn:
        entries = [decode(v, OutboxEntry) for _, v in txn.cursor(db=hub.store.db("outbox"))]
    [ret_entry] = [e for e in entries if e.kind == "return"]
    payload = decode(ret_entry.payload, StateReturn)
    assert [(r.package_label, r.units) for r in payload.returned] == [(tag2, 1)]
    assert payload.sale.external_receipt_number == f"{hub.config.store.licence}-{s4['receipt_number']}"
    assert {e.kind for e in entries} >= {"sale", "void", "return"}

    # the same report from the command line, reading the store beside the running hub
    day = datetime.now(UTC).astimezone(hub.config.zone).date().isoformat()
    data = str(hub.config.data_dir)
    done = await trio.run_process(
        [sys.executable, "-m", "hub.report_cli", "eod", "--date", day, "--format", "json", "--data", data],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    cli = json.loads(done.stdout)
    assert cli["tie_out"]["ok"] is True and cli["drawer_variance_cents"] == -500
    assert cli["total_cents"] == store["total_cents"]
    done = await trio.run_process(
        [sys.executable, "-m", "hub.report_cli", "eod", "--date", day, "--register", "R2", "--data", data],
        capture_stdout=True,
    )
    assert b"-$5.00" in done.stdout and b"<svg" in done.stdout
    ready_run = await trio.run_process(
        [sys.executable, "-m", "hub.report_cli", "readiness", "--data", data],
        capture_stdout=True,
        check=False,
    )
    text_out = ready_run.stdout.decode()
    assert "Ready to open:" in text_out and "Devices" in text_out and "Reconciliation" in text_out
