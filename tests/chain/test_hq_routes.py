"""HQ's explicit route table (hub/hq/web.py): what it serves, who may call what, 404 against 405, driven
through the ASGI app without PostgreSQL or NATS (the routes below answer before they would ask either)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from hub.hq.auth import COOKIE, Sessions, hash_password
from hub.hq.config import parse_hq_config
from hub.hq.web import ROUTES, HqApp, Reply, RouteTable

VIEWER_PW = "viewer only please"
HQ_TOML = f"""
[hq]
chain = "green"

[[staff]]
user = "vera"
role = "viewer"
password_hash = "{hash_password(VIEWER_PW)}"
"""


def stand_in_hq() -> Any:
    config = parse_hq_config(HQ_TOML)
    return SimpleNamespace(
        config=config, sessions=Sessions(config), healthy=lambda: False, db_ok=False, nats_ok=True
    )


async def call(
    app: HqApp, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []
    received = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return received.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    await app(scope, receive, send)
    start, answer = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, answer["body"]


def test_the_table_lists_every_page_and_api_with_its_role() -> None:
    routes = set(ROUTES)
    assert {("GET", "/healthz"), ("POST", "/login"), ("GET", "/api/stores"), ("GET", "/")} <= routes
    health = ROUTES.find("GET", "/healthz")
    assert health is not None and health[0] is None  # open, for the load balancer
    prices = ROUTES.find("PUT", "/api/catalogue/prices")
    assert prices is not None and prices[0] == "merchandiser"
    assert ROUTES.find("DELETE", "/api/stores") is None and ROUTES.knows("/api/stores")


def test_a_route_declared_twice_is_refused() -> None:
    table = RouteTable()

    async def page(hq: Any, req: Any) -> Reply:
        return Reply(200, b"")

    table.route("GET", "/x")(page)
    with pytest.raises(ValueError, match="two routes"):
        table.route("GET", "/x", role=None)(page)


async def test_the_app_serves_its_table_and_checks_roles() -> None:
    app = HqApp(stand_in_hq())
    status, _, body = await call(app, "GET", "/healthz")
    assert status == 503 and msgspec.json.decode(body) == {
        "ok": False,
        "postgres": False,
        "nats": True,
        "chain": "green",
    }
    assert (await call(app, "GET", "/nowhere"))[0] == 404
    assert (await call(app, "DELETE", "/api/stores"))[0] == 405
    assert (await call(app, "GET", "/api/stores"))[0] == 401
    status, headers, _ = await call(app, "GET", "/", headers={"accept": "text/html"})
    assert status == 303 and headers["location"] == "/login"
    login = msgspec.json.encode({"user": "vera", "password": VIEWER_PW})
    status, headers, body = await call(
        app, "POST", "/login", login, headers={"content-type": "application/json"}
    )
    assert status == 200 and msgspec.json.decode(body) == {"user": "vera", "role": "viewer"}
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith(f"{COOKIE}=")
    # a viewer may not set prices: refused by the table's role before the handler runs
    status, _, body = await call(app, "PUT", "/api/catalogue/prices", b"{}", headers={"cookie": cookie})
    assert status == 403 and b"merchandiser" in body


async def test_an_app_serves_the_table_it_is_given() -> None:
    table = RouteTable()

    @table.route("GET", "/only", role=None)
    async def only(hq: Any, req: Any) -> Reply:
        return Reply(200, b"here", "text/plain")

    app = HqApp(stand_in_hq(), routes=table)
    assert (await call(app, "GET", "/only"))[:3:2] == (200, b"here")
    assert (await call(app, "GET", "/healthz"))[0] == 404
