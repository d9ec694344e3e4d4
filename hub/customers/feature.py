"""The customers feature in the hub (issue 16): the loyalty program, the CRM actor and the nightly retention purge, wired in.

hub/wiring.py wires it (its REST routes: ``hub.customers.rest.ROUTES``); after the sale's setup
(``attach_to_sale``) the loyalty program (``[loyalty]`` in store.toml, checked at load) prices carts and books the
loyalty ledger inside every sale's transaction; the CRM actor runs supervised when ``[crm]`` is configured
(in the demo: the sandbox's CRM endpoint); the retention purge runs nightly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import trio

from actors.crm import CrmActor
from drivers.crm_webhook import CrmWebhook
from hub.config import CrmSection, StoreConfig
from hub.crm import outbox_store as crm_store
from hub.customers import records
from hub.customers.service import Customers
from hub.domain.loyalty import LoyaltyProgram
from hub.domain.outbox import DEFAULT_POLICY
from hub.supervisor import ChildSpec, Supervisor

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.sale.context import SaleContext

DEMO_CRM_SECRET = "storehub-demo-crm-secret"


def program_of(config: StoreConfig) -> LoyaltyProgram:
    """The store's loyalty program (``[loyalty]``), or none."""
    return msgspec.convert(config.loyalty, LoyaltyProgram) if config.loyalty is not None else LoyaltyProgram()


async def attach_to_sale(hub: Hub, customers: Customers, sale: SaleContext) -> None:
    """Customer records indexed; the loyalty program prices carts and books its ledger in every sale's and
    void's transaction; a scanned licence is remembered."""
    await trio.to_thread.run_sync(records.index_existing, hub.store)
    sale.pricing_for = customers.pricing_for
    sale.in_sale_txn.append(customers.book_sale)
    sale.in_void_txn.append(customers.book_void)
    sale.licence_seen.append(customers.licence_seen)


async def start(hub: Hub, sup: Supervisor, customers: Customers, *, demo: bool) -> None:
    """The nightly retention purge; the CRM actor when ``[crm]`` is set (the demo: the sandbox's CRM)."""
    await sup.start(ChildSpec(name="customer-purge", run=customers.nightly))
    sandbox = hub.services.demo.sandbox_url
    if hub.config.crm is None and demo and sandbox:
        # the demo sends its CRM events to the sandbox's CRM endpoint (GET /_sandbox/crm shows them)
        hub.config.crm = CrmSection(url=f"{sandbox.rstrip('/')}/crm/generic", secret=DEMO_CRM_SECRET)
    crm = hub.config.crm
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

    policy = hub.services.crm_retry_policy
    actor = CrmActor(hub, make_sender, retry_policy=policy or DEFAULT_POLICY)
    customers.crm = actor
    await sup.start(ChildSpec(name="crm", run=actor.run))
