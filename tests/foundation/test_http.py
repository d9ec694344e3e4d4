"""The HTTP listener: /healthz through startup, /metrics in Prometheus text format, static pages."""

from __future__ import annotations

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from hub import http_server, wiring
from hub.app import Hub
from hub.config import StoreConfig
from hub.metrics import FAST
from hub.sale import protocol as p
from hub.services import Services


async def test_healthz_503_while_starting_then_200(nursery: trio.Nursery, config: StoreConfig) -> None:
    release = trio.Event()
    http_up = trio.Event()

    async def starting(h: Hub) -> None:
        http_up.set()
        await release.wait()

    hub = Hub(config, Services(setup=[starting], routes=http_server.ROUTES))  # the foundation's routes
    nursery.start_soon(hub.run)
    with trio.fail_after(20):
        await http_up.wait()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
            r = await http.get("/healthz")
            assert r.status_code == 503 and r.json()["status"] == "starting"
            release.set()
            while not hub.ready:
                await trio.sleep(0.01)
            r = await http.get("/healthz")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "ok" and body["actors"]["register:R1"] is True
    hub.stop()


async def test_metrics_parse_as_prometheus_text(hub: Hub) -> None:
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
            r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in (
        "storehub_mailbox_depth",
        "storehub_actor_restarts",
        "storehub_ws_connections",
        "storehub_message_handling_seconds",
        "storehub_writer_batch_size",
        "storehub_writer_commit_seconds",
        "storehub_store_used_bytes",
        "storehub_audit_entries",
    ):
        assert name in families, name
    used = next(s.value for s in families["storehub_store_used_bytes"].samples)
    assert used > 0
    audit = next(s.value for s in families["storehub_audit_entries"].samples)
    assert audit >= 4  # demo staff were added


async def test_static_pages_and_traversal(hub: Hub) -> None:
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
            r = await http.get("/")
            assert r.status_code == 302 and r.headers["location"] == "/register/"
            r = await http.get("/register/")
            assert r.status_code == 200 and "html" in r.headers["content-type"]
            r = await http.get("/../pyproject.toml")
            assert r.status_code == 404
            r = await http.get("/api/hub")
            assert r.json()["ws_port"] == hub.ws_port


def test_message_handling_buckets_reach_past_the_longest_handler_wait() -> None:
    """A `pay` that waits minutes for the card must land in a bucket, not in +Inf beside a hung handler."""
    handlers, _ = wiring.tables(wiring.Features.store())  # every feature's handlers
    longest = max(spec.timeout_s for spec in handlers.values())
    assert handlers[p.Pay].timeout_s == longest > 60  # the handler that waits longest is still registered
    assert FAST[-1] > longest, (FAST[-1], longest)
