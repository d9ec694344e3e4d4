"""REST input bounded at the edge (issue 11): numbers in queries and paths, bodies as bounded message types,
JSON nesting checked before decoding; each refused as a clear 400/404 naming the field, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import trio

from hub.app import Hub
from hub.client import connect
from hub.config import StoreConfig
from hub.wiring import Features
from tests.conftest import DEMO_PAIRING, PINS, ws_url


async def test_rest_numbers_bodies_and_depth_are_bounded(
    hub_factory: Callable[..., Any], config: StoreConfig
) -> None:
    hub: Hub = await hub_factory(config, features=Features.store())
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["OFFICE"])
            await c.login("maria", PINS["maria"])
            headers = {"authorization": f"Bearer {c.session_token}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{hub.http_port}", headers=headers
            ) as http:
                for path, field in (
                    ("/api/backoffice/audit?before=18446744073709551616", "before"),
                    ("/api/backoffice/audit?limit=-5", "limit"),
                    ("/api/backoffice/receipt?number=-1", "number"),
                    ("/api/backoffice/receipt?number=99999999999999999999", "number"),
                    ("/api/reports/variance?days=1e9", "days"),
                ):
                    r = await http.get(path)
                    assert r.status_code == 400 and r.json()["field"] == field, (path, r.text)
                for path in (
                    "/api/state/dead-letter/99999999999999999999999/retry",
                    "/api/state/dead-letter/²/retry",
                ):
                    assert (await http.post(path)).status_code == 404
                r = await http.post("/api/state/manifests/M1/receive", json={"lines": [{"label": "x" * 200}]})
                assert r.status_code == 400 and r.json()["field"] == "lines[0].label"
                r = await http.post(
                    "/api/state/manifests/M1/receive", content=b'{"lines":' + b"[" * 3000 + b"]" * 3000 + b"}"
                )
                assert r.status_code == 400 and "nests deeper" in r.json()["message"]
                r = await http.post("/api/state/reconciliations/1/adjust", json={"note": ["not", "text"]})
                assert r.status_code == 400 and r.json()["field"] == "note"
                assert (await http.get("/healthz")).status_code == 200
