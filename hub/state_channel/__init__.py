"""The channel to the state's track-and-trace system (issue 5): the state-sync actor draining the outbox,
the dead-letter list, pulls (packages, incoming manifests), receiving deliveries and reconciliation.

hub/wiring.py wires it (``ChannelOptions``; ``start`` runs once the registers run):

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

import trio

from hub.domain.outbox import DEFAULT_POLICY, RetryPolicy
from hub.state_channel.policy import ReportingPolicy, policy_for
from hub.supervisor import ChildSpec, Supervisor

if TYPE_CHECKING:
    from actors.register import RegisterActor
    from actors.state_sync import StateSyncActor
    from hub.app import Hub
    from hub.state_channel.demo import InProcessSandbox

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
        from hub.errors import NotFound

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


async def start(hub: Hub, sup: Supervisor, options: ChannelOptions, sandbox: InProcessSandbox | None) -> None:
    """The demo's sandbox first (its URL is already in the state settings), then the channel."""
    if sandbox is not None:
        await sup.start(ChildSpec(name="state-sandbox", run=sandbox.run))
        from hub.state_channel.demo import align_sandbox

        try:
            await align_sandbox(hub, sandbox.url, hub.config.state_system.license_number)
        except Exception:
            log.exception("demo: could not plant the store's packages in the sandbox")
    await start_channel(
        hub,
        sup,
        retry_policy=options.retry_policy,
        poll_seconds=options.poll_seconds,
        pull_every=options.pull_every,
        reconcile_every=options.reconcile_every,
        schedule=options.schedule,
    )


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
    from hub.state_channel.policy import policy_for

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


async def start_channel(
    hub: Hub,
    sup: Supervisor,
    *,
    retry_policy: RetryPolicy | None = None,
    poll_seconds: float = 2.0,
    pull_every: float = 300.0,
    reconcile_every: float = 24 * 3600.0,
    schedule: bool = True,
) -> StateChannel:
    import httpx

    from actors.state_sync import StateSyncActor
    from hub.state_channel.pulls import run_schedule
    from hub.state_channel.senders import make_sender
    cfg = hub.config
    st = cfg.state_system
    licence = cfg.store.licence
    facility = st.license_number or licence
    channel = StateChannel(
        licence=licence,
        facility=facility,
        system=st.kind,
        time_zone=cfg.facility_time_zone,
        reporting=policy_for(cfg.store.jurisdiction),
        retry_policy=retry_policy or DEFAULT_POLICY,
        poll_seconds=poll_seconds,
        pull_every=pull_every,
        reconcile_every=reconcile_every,
    )
    hub.services.state_channel = channel
    if st.kind == "none":
        log.warning("no state system configured: the outbox keeps every sale until one is")
        return channel
    if st.kind == "metrc":
        from drivers.metrc import MetrcClient

        channel.reader = MetrcClient(
            st.base_url, st.vendor_key, st.user_key, facility, timeout=httpx.Timeout(st.timeout_seconds)
        )
    elif st.kind == "biotrack-rest":
        # patient lookup (the check-in's registry), inventory, inbound transfers (2024): see .biotrack
        from hub.state_channel.biotrack import BioTrackRestReader
        from hub.state_channel.senders import biotrack_rest_client

        channel.reader = BioTrackRestReader(biotrack_rest_client(st, facility))

    def returned_before(entry: Any, sale_number: str) -> dict[str, float]:
        from hub.state_channel.outbox_store import returned_before as read

        return read(hub.store, entry, sale_number)

    def sender_for(refs: dict[str, str]) -> Any:
        sender = make_sender(st, facility=facility, refs=refs, returned_before=returned_before)
        assert sender is not None
        return sender

    actor = StateSyncActor(
        hub, licence, sender_for, retry_policy=channel.retry_policy, poll_seconds=poll_seconds
    )
    channel.actor = actor
    await sup.start(ChildSpec(name=f"state-sync:{licence}", run=actor.run))
    if channel.reader is not None:

        async def pulls(*, task_status: Any) -> None:
            # this child owns the pull client: it closes it when the hub stops
            try:
                if schedule:
                    await run_schedule(hub, channel, task_status=task_status)
                else:
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await channel.reader.aclose()

        await sup.start(ChildSpec(name=f"state-pull:{licence}", run=pulls))
    return channel


def fast_retry_policy() -> RetryPolicy:
    """For tests and the demo's fault-injection playground: seconds, not minutes."""
    return RetryPolicy(
        base_delay=timedelta(milliseconds=100),
        max_delay=timedelta(seconds=1),
        auth_delay=timedelta(seconds=2),
    )
