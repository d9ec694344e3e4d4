"""The demo's state system: the bundled sandbox, run in-process, and a demo store whose packages it knows.

Licences: the sandbox seeds one Metrc facility (``sandbox.demo.METRC_LICENSE``), and it is the demo store's
own: a California retailer licence, in the store's state and time zone (Metrc writes ``SalesDateTime`` in the
facility's local time). The hub reports *to* the facility named in ``[state_system] license_number``; the
outbox keeps the store licence (one actor per store licence) and the actor sends that licence's entries to
the facility. ``point_at_sandbox`` also sets the facility's state and zone, and ``hub.config.check_facility``
refuses a store that disagrees with them.
"""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from hub.domain.catalog import Package, Product
from hub.store.env import decode
from hub.store.layout import DEMO_ALIGNED
from sandbox import demo as sandbox_demo

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("storehub.state_channel")

# hub category -> (Metrc item category) for packages the demo plants in the sandbox
METRC_CATEGORY = {
    "flower": "Buds",
    "pre-roll": "Pre-Roll Flower",
    "vape": "Vape Cartridge",
    "concentrate": "Concentrate",
    "edible": "Edible",
    "tincture": "Tincture",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def point_at_sandbox(hub: Hub, url: str) -> None:
    """The demo store's state settings: Metrc v2 at the sandbox, the sandbox's demo facility and keys."""
    st = hub.config.state_system
    st.kind = "metrc"
    st.base_url = url
    st.license_number = sandbox_demo.METRC_LICENSE
    st.facility_state = sandbox_demo.METRC_STATE
    st.facility_time_zone = sandbox_demo.METRC_TIME_ZONE
    st.vendor_key = sandbox_demo.METRC_VENDOR_KEY
    st.user_key = sandbox_demo.METRC_USER_KEY
    hub.services.demo.sandbox_url = url


def sandbox_rows(hub: Hub, facility: str) -> list[dict[str, Any]]:
    """Every package of the hub as a sandbox package of ``facility`` (units converted at this boundary)."""

    store = hub.store
    rows: list[dict[str, Any]] = []
    with store.read() as txn:
        products = {p.id: p for p in (decode(v, Product) for _, v in txn.cursor(db=store.db("products")))}
        for _, raw in txn.cursor(db=store.db("packages")):
            pkg = decode(raw, Package)
            product = products.get(pkg.product_id)
            if product is None or not product.is_cannabis:
                continue
            weighed = product.sold_by == "weight"
            rows.append(
                {
                    "license": facility,
                    "label": pkg.tag,
                    "item_name": product.name,
                    "category": METRC_CATEGORY.get(product.category, "Buds" if weighed else "Edible"),
                    "unit": "Grams" if weighed else "Each",
                    "quantity": pkg.quantity / 1000 if weighed else pkg.quantity,
                    "on_hold": pkg.status in ("on_hold", "quarantined"),
                    "finished": pkg.status == "finished",
                }
            )
    return rows


async def align_sandbox(hub: Hub, url: str, facility: str, *, force: bool = False) -> int:
    """Plant the hub's packages in the sandbox facility once, so that every demo sale is valid there."""
    from sandbox.testing import SandboxAdmin

    done = DEMO_ALIGNED.read(hub.store) is not None
    if done and not force:
        return 0
    rows = sandbox_rows(hub, facility)
    async with SandboxAdmin(url) as admin:
        await admin.upsert_packages(rows)

    def mark(txn: Any) -> None:
        DEMO_ALIGNED.put(txn, hub.store, True)

    await hub.writer.write(mark, label="demo")
    log.info("demo: planted %d hub packages in the sandbox facility %s", len(rows), facility)
    return len(rows)


class InProcessSandbox:
    """The sandbox as a supervised child of the hub; its data lives under the hub's data directory.

    The hub is pointed at it when wired, before the state channel is built, so its port is picked then. Another
    process may take that port before the sandbox binds it: a first start then moves to a new port and points
    the hub there (nothing has used the address yet); a restart keeps the port the hub already uses."""

    def __init__(self, hub: Hub, data_dir: Path) -> None:
        self.hub = hub
        self.data_dir = data_dir
        self._started = False
        self._point(free_port())

    def _point(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        point_at_sandbox(self.hub, self.url)

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        from sandbox.server import SandboxConfig, serve

        async with trio.open_nursery() as nursery:
            for attempt in range(3):
                try:
                    handle = await nursery.start(
                        serve, SandboxConfig(data_dir=self.data_dir, port=self.port, seed="demo")
                    )
                    break
                except* OSError as group:
                    _, other = group.split(lambda e: isinstance(e, OSError) and e.errno == errno.EADDRINUSE)
                    if other is not None or self._started or attempt == 2:
                        raise
                self._point(free_port())
            self._started = True
            task_status.started(handle)
