"""Payment-terminal actor: one card terminal paired with a register.

``Charge`` runs in the background (the customer may take a minute at the PIN pad) so ``CancelCharge``
still gets through; one charge at a time per terminal. Every charge ends in exactly one
``PaymentResult``. ``offline`` also takes the terminal's health down, which is the register's cue to
switch to cash only; a status poll brings it back up. A timed-out charge is cancelled at the terminal
before the result is published, so the register never sees "approved" after it gave up.
"""

from __future__ import annotations

import logging

import trio

from drivers.health import HealthTracker, Publish
from drivers.payment import (
    Approved,
    Cancelled,
    ChargeResult,
    Declined,
    Offline,
    PaymentTerminal,
    TcpJsonTerminal,
    TimedOut,
)
from hub.domain.devices import (
    CancelCharge,
    Charge,
    PaymentResult,
    PaymentTerminalConfig,
    TerminalStatusRequest,
    utc_now,
)

log = logging.getLogger("storehub.devices.payment")


class _Terminal:
    def __init__(self, config: PaymentTerminalConfig, publish: Publish, terminal: PaymentTerminal) -> None:
        self.config = config
        self.publish = publish
        self.terminal = terminal
        self.health = HealthTracker(config.device_id, "payment_terminal", publish)
        self.current: str | None = None  # reference being charged

    async def status_loop(self) -> None:
        while True:
            await self.refresh_status()
            await trio.sleep(self.config.status_interval_s)

    async def refresh_status(self) -> None:
        status = await self.terminal.status()
        if status.online:
            self.health.reading()
            await self.health.set_up("busy" if status.busy else status.detail or "ready")
        else:
            await self.health.set_down(f"offline: {status.detail}")

    async def charge(self, command: Charge) -> None:
        try:
            result = await self.terminal.charge(command.amount_cents, command.reference)
            if isinstance(result, TimedOut):
                # Outcome unknown: stop the terminal before telling the register (a late approval would
                # otherwise take money for a sale the register abandoned).
                cancelled = await self.terminal.cancel(command.reference)
                log.warning(
                    "payment %s: %s timed out; cancel %s",
                    self.config.device_id,
                    command.reference,
                    "accepted" if cancelled else "not confirmed",
                )
            await self._publish_result(command, result)
            if isinstance(result, Offline):
                await self.health.set_down(f"offline: {result.detail}")
            elif not isinstance(result, TimedOut):
                self.health.reading()
                await self.health.set_up("ready")
        finally:
            self.current = None

    async def _publish_result(self, command: Charge, result: ChargeResult) -> None:
        outcome, auth, detail = "error", "", ""
        if isinstance(result, Approved):
            outcome, auth = "approved", result.auth_code
        elif isinstance(result, Declined):
            outcome, detail = "declined", result.reason
        elif isinstance(result, TimedOut):
            outcome, detail = "timed_out", result.detail
        elif isinstance(result, Offline):
            outcome, detail = "offline", result.detail
        elif isinstance(result, Cancelled):
            outcome, detail = "cancelled", "cancelled at the terminal"
        await self.publish(
            PaymentResult(
                device_id=self.config.device_id,
                reference=command.reference,
                outcome=outcome,  # type: ignore[arg-type]
                amount_cents=command.amount_cents,
                auth_code=auth,
                detail=detail,
                at=utc_now(),
            )
        )

    async def refuse(self, command: Charge, detail: str) -> None:
        await self.publish(
            PaymentResult(
                device_id=self.config.device_id,
                reference=command.reference,
                outcome="error",
                amount_cents=command.amount_cents,
                detail=detail,
                at=utc_now(),
            )
        )


async def run(
    config: PaymentTerminalConfig,
    publish: Publish,
    inbox: trio.abc.ReceiveChannel,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    terminal: PaymentTerminal | None = None,
) -> None:
    """Run one terminal until cancelled or the inbox closes. ``terminal`` overrides the default
    ``TcpJsonTerminal`` (a vendor integration)."""
    t = _Terminal(
        config,
        publish,
        terminal
        or TcpJsonTerminal(
            config.address,
            connect_timeout_s=config.connect_timeout_s,
            charge_timeout_s=config.charge_timeout_s,
        ),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(t.status_loop)
        nursery.start_soon(t.health.run)
        task_status.started()
        async for command in inbox:
            if isinstance(command, Charge):
                if command.amount_cents <= 0:
                    await t.refuse(command, "amount must be positive")
                elif t.current is not None:
                    await t.refuse(command, f"terminal busy with {t.current}")
                else:
                    t.current = command.reference
                    nursery.start_soon(t.charge, command)
            elif isinstance(command, CancelCharge):
                if t.current == command.reference:
                    await t.terminal.cancel(command.reference)
            elif isinstance(command, TerminalStatusRequest):
                await t.refresh_status()
                await t.health.publish_now()
            else:
                log.warning("payment %s: ignoring command %r", config.device_id, command)
        nursery.cancel_scope.cancel()
