"""Demo store only: what the register's demo panel can "scan" (demo licences and package tags)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from hub.domain.demo_catalogue import build_demo_store
from hub.http_server import HttpRequest, HttpResponse, RouteTable
from hub.sale.context import ctx_of
from hub.sale.inventory import id_hash

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.domain.demo_catalogue import DemoStore

# the REST routes this module serves; hub/wiring.py joins it into the hub's table
ROUTES = RouteTable()

ROLE_LABELS = {
    "adult": "Licence: adult, in-state",
    "non_resident": "Licence: adult, out of state",
    "medical": "Licence: medical patient",
    "expired_id": "Licence: expired ID",
    "under_21": "Licence: under 21",
    "turns_21_today": "Licence: turns 21 today",
    "medical_registration_expired": "Licence: patient, registration lapsed",
}


def demo_store(hub: Hub) -> DemoStore | None:
    """The demo catalogue as it was seeded (rebuilt deterministically from the seeding date)."""
    d = hub.services.demo.store
    if d is not None:
        return d
    with hub.store.read() as txn:
        raw = txn.get(b"demo_catalogue", db=hub.store.db("meta"))
        seeded = None if raw is None else bytes(raw).decode()
    if seeded is None:
        return None

    key = ctx_of(hub).id_key
    d = build_demo_store(
        date.fromisoformat(seeded),
        home_jurisdiction=hub.config.store.jurisdiction,
        id_hasher=lambda j, n: id_hash(key, j, n),
    )
    hub.services.demo.store = d
    return d


@ROUTES.route("GET", "/api/demo/scans")
async def demo_scans(hub: Hub, req: HttpRequest) -> HttpResponse:
    if not hub.config.server.demo:
        return HttpResponse(404, "not found")
    d = demo_store(hub)
    if d is None:
        return HttpResponse.json([])
    out: list[dict[str, str]] = [
        {"label": ROLE_LABELS.get(c.role, c.role), "kind": "id", "data": c.id_scan} for c in d.customers
    ]
    by_id = {p.id: p for p in d.products}
    shown: set[str] = set()
    for pkg in d.packages:
        product = by_id.get(pkg.product_id)
        if product is None or product.id in shown or pkg.status != "active" or pkg.lab_testing != "passed":
            continue
        if len(shown) >= 12:
            break
        shown.add(product.id)
        out.append({"label": f"Package: {product.name}", "kind": "package", "data": pkg.tag})
    for scenario, tag in sorted(d.scenarios.items()):
        out.append({"label": f"Package: {scenario.replace('_', ' ')}", "kind": "package", "data": tag})
    return HttpResponse.json(out)
