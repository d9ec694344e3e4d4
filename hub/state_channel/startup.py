"""Starting the state channel once the registers run: the demo's sandbox, the state-sync actor, pulls."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from actors.state_sync import StateSyncActor
from drivers.metrc import MetrcClient
from hub.domain.outbox import DEFAULT_POLICY, RetryPolicy
from hub.state_channel import ChannelOptions, StateChannel
from hub.state_channel.biotrack import BioTrackRestReader
from hub.state_channel.demo import align_sandbox
from hub.state_channel.outbox_store import returned_before as read
from hub.state_channel.policy import policy_for
from hub.state_channel.pulls import run_schedule
from hub.state_channel.senders import biotrack_rest_client, make_sender
from hub.supervisor import ChildSpec, Supervisor

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.state_channel.demo import InProcessSandbox

log = logging.getLogger("storehub.state_channel")


async def start(hub: Hub, sup: Supervisor, options: ChannelOptions, sandbox: InProcessSandbox | None) -> None:
    """The demo's sandbox first (its URL is already in the state settings), then the channel."""
    if sandbox is not None:
        await sup.start(ChildSpec(name="state-sandbox", run=sandbox.run))

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
        channel.reader = MetrcClient(
            st.base_url, st.vendor_key, st.user_key, facility, timeout=httpx.Timeout(st.timeout_seconds)
        )
    elif st.kind == "biotrack-rest":
        # patient lookup (the check-in's registry), inventory, inbound transfers (2024): see .biotrack

        channel.reader = BioTrackRestReader(biotrack_rest_client(st, facility))

    def returned_before(entry: Any, sale_number: str) -> dict[str, float]:

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
