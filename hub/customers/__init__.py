"""Customers, loyalty and the CRM bridge (issue 16).

``install(hub)`` wires it into a hub before it starts: the REST routes register on import; after the
sale's setup the loyalty program (``[loyalty]`` in store.toml, checked at load) prices carts and books the
loyalty ledger inside every sale's transaction; the CRM actor runs supervised when ``[crm]`` is configured
(in the demo: the sandbox's CRM endpoint); the retention purge runs nightly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import trio

from actors.crm import CrmActor
from drivers.crm_webhook import CrmWebhook
from hub.config import CrmSection
from hub.crm import outbox_store as crm_store
from hub.customers import records, rest  # noqa: F401  (rest: routes register on import)
from hub.customers.service import Customers
from hub.domain.loyalty import LoyaltyProgram
from hub.supervisor import ChildSpec

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.supervisor import Supervisor

DEMO_CRM_SECRET = "storehub-demo-crm-secret"


def install(hub: Hub, demo_options: dict[str, Any] | None = None) -> None:
    cfg = hub.config
    program = msgspec.convert(cfg.loyalty, LoyaltyProgram) if cfg.loyalty is not None else LoyaltyProgram()
    customers = Customers(hub, program)
    hub.extensions["customers"] = customers
    previous = hub._setup

    async def setup(h: Hub) -> None:
        if previous is not None:
            r = previous(h)
            if hasattr(r, "__await__"):
                await r
        sale = h.extensions.get("sale")
        if sale is None:
            return
        await trio.to_thread.run_sync(records.index_existing, h.store)
        sale.pricing_for = customers.pricing_for
        sale.in_sale_txn.append(customers.book_sale)
        sale.in_void_txn.append(customers.book_void)
        sale.licence_seen.append(customers.licence_seen)

    hub._setup = setup
    hub.extensions.setdefault("after_sale", []).append(customers.after_sale)
    hub.extensions.setdefault("readiness_checks", []).append(customers.readiness)

    async def start(h: Hub, sup: Supervisor) -> None:
        if "sale" not in h.extensions:
            return
        await sup.start(ChildSpec(name="customer-purge", run=customers.nightly))
        sandbox = h.extensions.get("sandbox_url")
        if h.config.crm is None and demo_options is not None and sandbox:
            # the demo sends its CRM events to the sandbox's CRM endpoint (GET /_sandbox/crm shows them)
            h.config.crm = CrmSection(url=f"{sandbox.rstrip('/')}/crm/generic", secret=DEMO_CRM_SECRET)
        crm = h.config.crm
        if crm is None:
            return

        def make_sender() -> CrmWebhook:
            assert crm is not None
            return CrmWebhook(
                crm.url,
                style=crm.style,
                secret=crm.secret,
                api_key=crm.api_key,
                timeout=crm.timeout_seconds,
                decode_event=crm_store.event_of,
            )

        policy = h.extensions.get("crm_retry_policy")
        actor = CrmActor(h, make_sender, **({"retry_policy": policy} if policy is not None else {}))
        customers.crm = actor
        await sup.start(ChildSpec(name="crm", run=actor.run))

    hub.extensions.setdefault("starters", []).append(start)
