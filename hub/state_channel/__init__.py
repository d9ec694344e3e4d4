"""The channel to the state's track-and-trace system (issue 5): the state-sync actor draining the outbox,
the dead-letter list, pulls (packages, incoming manifests), receiving deliveries and reconciliation.

hub/wiring.py wires it (``ChannelOptions``; ``hub.state_channel.startup.start`` runs once the registers run):

- with ``[state_system] kind = "none"`` (and not in the demo) the outbox simply accumulates;
- in the demo (``DemoOptions.sandbox`` true) the bundled sandbox runs in-process on a free loopback port
  with ``--seed demo`` data under ``<data_dir>/sandbox``; the hub's state settings point at it, its URL is in
  ``hub.services.demo.sandbox_url``, and the demo store's packages are planted in the sandbox facility once.

Licences: the outbox is keyed by the store's licence (``[store] licence``); one actor per such licence sends
its entries to the state facility ``[state_system] license_number`` (the store licence when empty). In the
demo that facility is the sandbox's, in the store's state and zone: see ``hub.state_channel.demo``. A store
whose facility is in another state or time zone does not start (``hub.config.check_facility``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hub.domain.outbox import DEFAULT_POLICY, RetryPolicy
from hub.errors import NotFound
from hub.state_channel.policy import ReportingPolicy, policy_for

if TYPE_CHECKING:
    from actors.register import RegisterActor
    from actors.state_sync import StateSyncActor
    from hub.app import Hub

log = logging.getLogger("storehub.state_channel")


@dataclass
class StateChannel:
    licence: str  # the outbox licence: the store's
    facility: str  # the state facility the entries go to
    system: str  # metrc | biotrack-2014 | biotrack-rest (flavour: ``base_url`` ending ``#2024``) | none
    time_zone: str
    reporting: ReportingPolicy
    reader: Any = None  # a client for pulls (its own GET limiter); None without a state system
    actor: StateSyncActor | None = None
    retry_policy: RetryPolicy = DEFAULT_POLICY
    poll_seconds: float = 2.0
    pull_every: float = 300.0
    reconcile_every: float = 24 * 3600.0
    last_pull_error: str = ""
    state_view: dict[str, tuple[float, str, str]] = field(default_factory=dict)


def channel_of(hub: Hub) -> StateChannel:
    ch = hub.services.state_channel
    if ch is None:

        raise NotFound("This hub has no state channel.")
    return ch


@dataclass(frozen=True)
class ChannelOptions:
    """How the channel runs (tests shorten the waits; ``schedule`` False leaves pulls to the test)."""

    retry_policy: RetryPolicy | None = None
    poll_seconds: float = 2.0
    pull_every: float = 300.0
    reconcile_every: float = 24 * 3600.0
    schedule: bool = True


def wake(hub: Hub) -> None:
    """Something reached the outbox (a sale, a void, a return, a manager's retry): send it now."""
    ch = hub.services.state_channel
    if ch is not None and ch.actor is not None:
        ch.actor.wake()


def register_state_view(actor: RegisterActor) -> dict[str, Any]:
    """What a register shows about the state system: nothing while it answers; when it does not, that
    selling goes on and what this jurisdiction allows meanwhile (policy.py, as data)."""
    hub = actor.hub
    health = hub.services.state_health
    if health is None or health.get("reachable", True):
        return {"state_system": {"ok": True, "message": ""}}

    rules = policy_for(hub.config.store.jurisdiction).sell_while_down
    allowed = "; ".join(f"{who}: {what}" for who, what in rules.items())
    return {"state_system": {"ok": False, "message": (
        "The state system is not answering: sales are kept and sent when it is back. " + allowed).strip()}}


class StateHealthView:
    """What the readiness check asks of the state channel, read from the running actor when asked."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def get(self, key: str, default: Any = None) -> Any:
        ch = self.hub.services.state_channel
        if ch is None or ch.actor is None:
            return default
        st = ch.actor.status()
        outcome = st.get("last_outcome") or ""
        paused = st.get("paused_until") is not None
        # decided on the class of the last answer (drivers/state_errors.py maps them), never on its text
        if key == "reachable":
            return not (paused and outcome in ("unavailable", "outcome_unknown", "rate_limited"))
        if key == "credentials_ok":
            return outcome != "auth"
        if key == "detail":
            sent = st.get("last_sent_at") or "never"
            tail = f"; last error: {st['last_error']}" if st.get("last_error") else ""
            return f"{st.get('backlog', 0)} entries waiting, last sent {sent}{tail}"
        return st.get(key, default)


def fast_retry_policy() -> RetryPolicy:
    """For tests and the demo's fault-injection playground: seconds, not minutes."""
    return RetryPolicy(
        base_delay=timedelta(milliseconds=100),
        max_delay=timedelta(seconds=1),
        auth_delay=timedelta(seconds=2),
    )
