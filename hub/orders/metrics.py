"""Order figures for /metrics, read when Prometheus scrapes (a custom collector: nothing to keep in sync)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from hub.domain import orders as core
from hub.domain.delivery import oldest_pending
from hub.orders import store as ostore

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.services import Services

PICK_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


class OrderCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        hub = self.hub
        if not hub.ready:
            return
        now = datetime.now(UTC)
        orders = ostore.open_orders(hub.store)
        by_state = GaugeMetricFamily("storehub_orders", "Open online orders by state", labels=["state"])
        for state in ("received", "accepted", "picking", "ready"):
            by_state.add_metric([state], sum(1 for o in orders if o.state == state))
        yield by_state
        unaccepted = [o.created_at for o in orders if o.state == "received"]
        yield GaugeMetricFamily(
            "storehub_orders_oldest_unaccepted_seconds",
            "Age of the oldest order nobody has accepted yet (0 when none)",
            value=(now - min(unaccepted)).total_seconds() if unaccepted else 0.0,
        )
        yield GaugeMetricFamily(
            "storehub_orders_past_promised",
            "Orders not ready yet whose promised time has passed",
            value=sum(1 for o in orders if core.late(o, now)),
        )
        backlog = GaugeMetricFamily(
            "storehub_order_delivery_oldest_seconds",
            "Age of the oldest undelivered channel callback or customer notice",
            labels=["outbox"],
        )
        for table in ("order_callbacks", "notices"):
            backlog.add_metric(
                [table], oldest_pending(ostore.deliveries(hub.store, table), now).total_seconds()
            )
        yield backlog


def install_metrics(hub: Hub) -> None:
    hub.metrics.registry.register(OrderCollector(hub))


def pick_seconds(registry: CollectorRegistry) -> Histogram:
    """Time from claiming an order to ready (built by hub/wiring.py with the orders feature)."""
    return Histogram(
        "storehub_order_pick_seconds",
        "Time from claiming an order to ready",
        buckets=PICK_BUCKETS,
        registry=registry,
    )


def observe_pick(services: Services, seconds: float) -> None:
    h = services.order_pick_seconds
    if h is not None:
        h.observe(seconds)
