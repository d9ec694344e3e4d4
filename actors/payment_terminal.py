"""Payment-terminal actor: one card terminal paired with a register.

``Charge`` runs in the background (the customer may take a minute at the PIN pad) so ``CancelCharge``
still gets through; one charge at a time per terminal. Every charge ends in exactly one
``PaymentResult``, with ``PaymentProgress`` published while it waits. ``offline`` also takes the
terminal's health down, which is the register's cue to switch to cash only; a status poll brings it back
up. A charge whose answer did not come in time is cancelled at the terminal and then looked up
(``lookup``, SPIn Status) before the result is published: the register learns the real outcome, and
nothing is ever sent twice. ``VoidCharge`` and ``RefundCharge`` take money back (a sale whose commit
failed, a voided sale, a return to the card).

The driver is chosen by ``config.driver``: "generic" (drivers/payment.py's line JSON) or "spin"
(drivers/spin.py, Dejavoo SPIn REST).
"""

from __future__ import annotations

import logging

import trio

from drivers.health import HealthTracker, Publish
from drivers.payment import (
    RECOVER_STEP_S,
    Approved,
    Cancelled,
    ChargeResult,
    Declined,
    Offline,
    PaymentTerminal,
    TcpJsonTerminal,
    TimedOut,
    Unresolved,
)
from drivers.spin import SpinTerminal
from hub.domain.devices import (
    CancelCharge,
    Charge,
    PaymentProgress,
    PaymentResult,
    PaymentTerminalConfig,
    RefundCharge,
    TerminalStatusRequest,
    VoidCharge,
    utc_now,
)

log = logging.getLogger("storehub.devices.payment")


def make_terminal(config: PaymentTerminalConfig) -> PaymentTerminal:
    if config.driver == "spin":
        return SpinTerminal(
            config.address,
            tpn=config.tpn,
            auth_key=config.auth_key,
            payment_type=config.payment_type,
            proxy_timeout_s=max(1, int(config.charge_timeout_s)),
            connect_timeout_s=config.connect_timeout_s,
        )
    return TcpJsonTerminal(
        config.address, connect_timeout_s=config.connect_timeout_s, charge_timeout_s=config.charge_timeout_s
    )


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

    async def _progress(self, command: Charge, state: str, detail: str) -> None:
        await self.publish(
            PaymentProgress(
                device_id=self.config.device_id,
                reference=command.reference,
                state=state,  # type: ignore[arg-type]
                detail=detail,
            )
        )

    async def charge(self, command: Charge) -> None:
        try:
            await self._progress(command, "waiting", "Insert, tap or swipe the card on the terminal.")
            if hasattr(self.terminal, "on_progress"):  # SPIn: the terminal's own progress, and Status lookups

                async def progress(state: str, text: str) -> None:
                    await self._progress(command, state, text)

                self.terminal.on_progress = progress
            result = await self.terminal.charge(command.amount_cents, command.reference)
            recovered = False
            if isinstance(result, TimedOut):
                result, recovered = await self._recover(command, result), True
            await self._publish_result(command, result, recovered=recovered)
            if isinstance(result, Offline):
                await self.health.set_down(f"offline: {result.detail}")
            elif not isinstance(result, TimedOut):
                self.health.reading()
                await self.health.set_up("ready")
        finally:
            self.current = None
            if hasattr(self.terminal, "on_progress"):
                self.terminal.on_progress = None

    async def _recover(self, command: Charge, timed_out: TimedOut) -> ChargeResult:
        """The outcome is unknown: stop the terminal, then ask it what happened (a late approval must not
        take money for a sale the register abandoned, and an approval we missed must not be charged
        again)."""
        await self._progress(
            command, "recovering", "The terminal did not answer in time: asking it for the outcome."
        )
        with trio.move_on_after(RECOVER_STEP_S):
            cancelled = await self.terminal.cancel(command.reference)
            log.warning(
                "payment %s: %s timed out; cancel %s",
                self.config.device_id,
                command.reference,
                "accepted" if cancelled else "not confirmed",
            )
        found: ChargeResult | None = timed_out
        with trio.move_on_after(RECOVER_STEP_S):
            found = await self.terminal.lookup(command.reference)
        if found is None:  # the terminal has no such attempt: nothing was charged
            return Declined(
                command.reference, command.amount_cents, "not charged (the terminal has no record)", ""
            )
        if isinstance(found, Offline):
            return timed_out
        if isinstance(found, Approved | Declined | Cancelled | TimedOut):
            return found
        return timed_out

    async def _publish_result(
        self, command: Charge, result: ChargeResult, *, operation: str = "sale", recovered: bool = False
    ) -> None:
        outcome, auth, detail, code, last4 = "error", "", "", "", ""
        amount = command.amount_cents
        if isinstance(result, Unresolved):  # money may be taken (what the terminal holds, not the charge)
            outcome, detail, amount = "unresolved", result.detail, result.amount_cents
        elif isinstance(result, Approved):
            outcome, auth, last4 = "approved", result.auth_code, result.card_last4
        elif isinstance(result, Declined):
            outcome, detail, code = "declined", result.reason, result.code
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
                amount_cents=amount,
                auth_code=auth,
                detail=detail,
                at=utc_now(),
                operation=operation,  # type: ignore[arg-type]
                decline_code=code,
                card_last4=last4,
                recovered=recovered,
            )
        )

    async def void(self, command: VoidCharge) -> None:
        ok = await self.terminal.void(command.reference, command.amount_cents)
        await self.publish(
            PaymentResult(
                device_id=self.config.device_id,
                reference=command.reference,
                outcome="approved" if ok else "error",
                amount_cents=command.amount_cents,
                detail="" if ok else "the terminal did not confirm the void",
                at=utc_now(),
                operation="void",
            )
        )

    async def refund(self, command: RefundCharge) -> None:
        try:
            await self._progress(
                Charge(reference=command.reference, amount_cents=command.amount_cents),
                "waiting",
                "The customer taps or inserts the card for the refund.",
            )
            result = await self.terminal.refund(command.amount_cents, command.reference)
            if isinstance(result, TimedOut):
                found = await self.terminal.lookup(command.reference)
                result = found if found is not None and not isinstance(found, Offline) else result
            await self._publish_result(
                Charge(reference=command.reference, amount_cents=command.amount_cents),
                result,
                operation="return",
            )
        finally:
            self.current = None

    async def refuse(self, command: Charge | RefundCharge, detail: str, operation: str = "sale") -> None:
        await self.publish(
            PaymentResult(
                device_id=self.config.device_id,
                reference=command.reference,
                outcome="error",
                amount_cents=command.amount_cents,
                detail=detail,
                at=utc_now(),
                operation=operation,  # type: ignore[arg-type]
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
    """Run one terminal until cancelled or the inbox closes. ``terminal`` overrides the driver chosen by
    ``config.driver``."""
    t = _Terminal(config, publish, terminal or make_terminal(config))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(t.status_loop)
        nursery.start_soon(t.health.run)
        task_status.started()
        async for command in inbox:
            if isinstance(command, Charge | RefundCharge):
                operation = "sale" if isinstance(command, Charge) else "return"
                if command.amount_cents <= 0:
                    await t.refuse(command, "amount must be positive", operation)
                elif t.current is not None:
                    await t.refuse(command, f"terminal busy with {t.current}", operation)
                else:
                    t.current = command.reference
                    nursery.start_soon(t.charge if isinstance(command, Charge) else t.refund, command)
            elif isinstance(command, CancelCharge):
                if t.current == command.reference:
                    await t.terminal.cancel(command.reference)
            elif isinstance(command, VoidCharge):
                nursery.start_soon(t.void, command)
            elif isinstance(command, TerminalStatusRequest):
                await t.refresh_status()
                await t.health.publish_now()
            else:
                log.warning("payment %s: ignoring command %r", config.device_id, command)
        nursery.cancel_scope.cancel()
