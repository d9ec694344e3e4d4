"""Back-office REST: incidents reported at a register are listed and exported (CSV, formula-safe); the audit
chain verifies; readiness lists problems in plain words; everything is refused to a budtender."""

from __future__ import annotations

import csv
import io

import httpx
import trio

from hub.app import Hub
from hub.client import connect
from tests.backoffice.office_helpers import ready
from tests.conftest import ws_url


async def test_incidents_audit_readiness_and_roles(office_hub: Hub) -> None:
    hub = office_hub
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as reg, connect(ws_url(hub)) as office:
            await ready(reg, "R1", "ana")
            await ready(office, "OFFICE", "maria")
            await reg.request(
                "report_incident", category="promotion", description='=HYPERLINK("x") 2-for-1 did not apply'
            )
            await reg.request(
                "report_incident", category="terminal", description="card terminal offline 10 min"
            )
            await reg.request("open_drawer", counted={"B20": 5}, witness="maria", witness_pin="3333")
            manager = {"authorization": f"Bearer {office.session_token}"}
            budtender = {"authorization": f"Bearer {reg.session_token}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
                rows = (await http.get("/api/backoffice/incidents", headers=manager)).json()["incidents"]
                assert [r["category"] for r in rows] == ["terminal", "promotion"]
                text = (await http.get("/api/backoffice/incidents?format=csv", headers=manager)).text
                table = list(csv.reader(io.StringIO(text)))
                assert table[0][-1] == "description" and table[1][4] == "promotion"
                assert table[1][5].startswith("'=")  # a spreadsheet will not run it
                verify = (await http.post("/api/backoffice/audit/verify", headers=manager)).json()
                assert verify["ok"] is True and verify["entries"] > 5
                entries = (await http.get("/api/backoffice/audit?limit=3", headers=manager)).json()["entries"]
                assert len(entries) == 3 and entries[0]["seq"] > entries[1]["seq"]
                r = (await http.get("/api/backoffice/readiness", headers=manager)).json()
                names = [c["name"] for c in r["checks"]]
                assert "State system" in names and "Reconciliation" in names
                assert all(c["message"] for c in r["checks"])
                for path in (
                    "/api/backoffice/incidents",
                    "/api/backoffice/readiness",
                    "/api/reports/eod",
                    "/api/backoffice/drawers",
                    "/api/backoffice/cash-flags",
                    "/api/backoffice/staff",
                ):
                    assert (await http.get(path, headers=budtender)).status_code == 403, path
