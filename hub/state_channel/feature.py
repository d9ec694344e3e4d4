"""The state channel as a feature of the hub: its options, the channel built by the wiring, what starts once the
registers run (the demo's sandbox, the state-sync actor, the pulls) and what the registers and readiness read.

hub/wiring.py builds the channel (:func:`build`: the record and its state-sync actor) when it builds the hub,
and adds :func:`start` as a start step. The pull client (``StateChannel.reader``) is shared by the pulls, the
back office and the check-in's registry lookup, so it lives as long as the hub runs (:func:`hold_reader`),
not as long as one run of the pull child: a restarted child must find it open, not closed by the run that
crashed (a client is an open connection pool, not a plan).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import trio

from actors.state_sync import StateSyncActor
from drivers.metrc import MetrcClient
from hub.domain.outbox import DEFAULT_POLICY, RetryPolicy
from hub.errors import NotFound
from hub.state_channel.biotrack import BioTrackRestReader
from hub.state_channel.demo import align_sandbox
from hub.state_channel.outbox_store import returned_before as read_returned_before
from hub.state_channel.policy import ReportingPolicy, policy_for
from hub.state_channel.pulls import run_schedule
from hub.state_channel.senders import Sender, biotrack_rest_client, make_sender
from hub.supervisor import ChildSpec, Supervisor

if TYPE_CHECKING:
    from actors.register import RegisterActor
    from hub.app import Hub
    from hub.config import StateSystemSection
    from hub.domain.outbox import OutboxEntry
    from hub.services import Services
    from hub.state_channel.demo import InProcessSandbox

log = logging.getLogger("storehub.state_channel")


@dataclass(frozen=True)
class ChannelOptions:
    """How the channel runs (tests shorten the waits; ``schedule`` False leaves pulls to the test)."""

    retry_policy: RetryPolicy | None = None
    poll_seconds: float = 2.0
    pull_every: float = 300.0
    reconcile_every: float = 24 * 3600.0
    schedule: bool = True


@dataclass
class StateChannel:
    licence: str  # the outbox licence: the store's
    facility: str  # the state facility the entries go to
    system: str  # metrc | biotrack-2014 | biotrack-rest (flavour: ``base_url`` ending ``#2024``) | none
    time_zone: str
    reporting: ReportingPolicy
    reader: Any = None  # a client for pulls (its own GET limiter), open while the hub runs; None without one
    actor: StateSyncActor | None = None  # None with ``[state_system] kind = "none"``
    retry_policy: RetryPolicy = DEFAULT_POLICY
    poll_seconds: float = 2.0
    pull_every: float = 300.0
    reconcile_every: float = 24 * 3600.0
    schedule: bool = True  # pulls on their timer (False: a test pulls when it wants)
    last_pull_error: str = ""
    state_view: dict[str, tuple[float, str, str]] = field(default_factory=dict)


def channel_of(services: Services) -> StateChannel:
    ch = services.state_channel
    if ch is None:
        raise NotFound("This hub has no state channel.")
    return ch


def build(hub: Hub, options: ChannelOptions) -> StateChannel:
    """The channel to the configured state system and, when there is one, its state-sync actor (not yet
    running). The state settings are final here (the demo pointed them at its sandbox before; only its port
    may still move, on a first start whose port was taken, before anything reads it)."""
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
        retry_policy=options.retry_policy or DEFAULT_POLICY,
        poll_seconds=options.poll_seconds,
        pull_every=options.pull_every,
        reconcile_every=options.reconcile_every,
        schedule=options.schedule,
    )
    if st.kind == "none":
        return channel

    def returned_before(entry: OutboxEntry, sale_number: str) -> dict[str, float]:
        return read_returned_before(hub.store, entry, sale_number)

    def sender_for(refs: dict[str, str]) -> Sender:
        sender = make_sender(st, facility=facility, refs=refs, returned_before=returned_before)
        assert sender is not None  # a kind other than "none" always has one
        return sender

    channel.actor = StateSyncActor(
        hub, licence, sender_for, retry_policy=channel.retry_policy, poll_seconds=channel.poll_seconds
    )
    return channel


async def start(hub: Hub, sup: Supervisor, channel: StateChannel, sandbox: InProcessSandbox | None) -> None:
    """The demo's sandbox first (the state settings name its URL once it listens: InProcessSandbox), then the
    pull client (for the hub's whole run), the state-sync actor and the pull schedule."""
    if sandbox is not None:
        await sup.start(ChildSpec(name="state-sandbox", run=sandbox.run))
        try:
            await align_sandbox(hub, sandbox.url, hub.config.state_system.license_number)
        except Exception:
            log.exception("demo: could not plant the store's packages in the sandbox")
    actor = channel.actor
    if actor is None:
        log.warning("no state system configured: the outbox keeps every sale until one is")
        return
    open_reader = reader_for(hub.config.state_system, channel.facility)
    if open_reader is not None:
        await sup.start_task(partial(hold_reader, channel, open_reader))
    await sup.start(ChildSpec(name=f"state-sync:{channel.licence}", run=actor.run))
    if open_reader is not None and channel.schedule:
        await sup.start(
            ChildSpec(name=f"state-pull:{channel.licence}", run=partial(run_schedule, hub, channel))
        )


def reader_for(st: StateSystemSection, facility: str) -> Callable[[], Any] | None:
    """How to open the pull client for the configured state system; None for one the hub only reports to."""
    if st.kind == "metrc":
        return partial(
            MetrcClient,
            st.base_url,
            st.vendor_key,
            st.user_key,
            facility,
            timeout=httpx.Timeout(st.timeout_seconds),
        )
    if st.kind == "biotrack-rest":
        # patient lookup (the check-in's registry), inventory, inbound transfers (2024): see .biotrack
        return lambda: BioTrackRestReader(biotrack_rest_client(st, facility))
    return None


async def hold_reader(
    channel: StateChannel, open_reader: Callable[[], Any], *, task_status: trio.TaskStatus[Any]
) -> None:
    """Open the pull client and keep it open until the hub stops. It is not a supervised child's: the pull
    child's restart, or its park after a crash loop, leaves the back office and the check-in's registry
    lookup a working client, and the next pull uses the same one."""
    reader = open_reader()
    channel.reader = reader
    try:
        task_status.started(reader)
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await reader.aclose()


def register_state_view(actor: RegisterActor) -> dict[str, Any]:
    """What a register shows about the state system: nothing while it answers; when it does not, that
    selling goes on and what this jurisdiction allows meanwhile (policy.py, as data)."""
    hub = actor.parts
    health = hub.services.state_health
    if health is None or health.get("reachable", True):
        return {"state_system": {"ok": True, "message": ""}}

    rules = policy_for(hub.config.store.jurisdiction).sell_while_down
    allowed = "; ".join(f"{who}: {what}" for who, what in rules.items())
    return {
        "state_system": {
            "ok": False,
            "message": (
                "The state system is not answering: sales are kept and sent when it is back. " + allowed
            ).strip(),
        }
    }


class StateHealthView:
    """What the readiness check asks of the state channel, read from its running actor when asked."""

    def __init__(self, channel: StateChannel) -> None:
        self.channel = channel

    def get(self, key: str, default: Any = None) -> Any:
        actor = self.channel.actor
        if actor is None:
            return default
        st = actor.status()
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
