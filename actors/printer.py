"""Printer actor: one receipt (ESC/POS) or label (ZPL) printer.

Receives ``PrintReceipt`` / ``PrintLabel`` / ``OpenDrawer``, renders the bytes (``drivers.escpos``,
``drivers.zpl``), and hands them to a ``PrintSpooler`` that never blocks the sale: a job is acknowledged
as ``queued`` at once and ``printed`` when the printer took it. A printer that is down or out of paper
is reported in ``DeviceHealth`` (with the number of jobs waiting) so the register can say so.
"""

from __future__ import annotations

import logging

import trio

from drivers import escpos, zpl
from drivers.errors import DeviceError
from drivers.health import HealthTracker, Publish
from drivers.printer_transport import PrintSpooler
from hub.domain.devices import (
    OpenDrawer,
    PrintBagLabel,
    PrinterConfig,
    PrintJobUpdate,
    PrintLabel,
    PrintReceipt,
    PrintZpl,
)

log = logging.getLogger("storehub.devices.printer")


class _Printer:
    def __init__(self, config: PrinterConfig, publish: Publish) -> None:
        self.config = config
        self.publish = publish
        self.health = HealthTracker(config.device_id, "printer", publish)
        self.spooler = PrintSpooler(
            config.address,
            language=config.language,
            status_check=config.status_check,
            status_timeout_s=config.status_timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            baudrate=config.baudrate,
            max_jobs=config.max_queued_jobs,
            on_job=self._job_done,
            on_health=self._health_changed,
        )

    async def _job_done(self, job_id: str, state: str, detail: str) -> None:
        self.health.reading()
        self.health.set_queued(self.spooler.queued)
        await self.publish(
            PrintJobUpdate(
                device_id=self.config.device_id,
                job_id=job_id,
                state="printed" if state == "printed" else "failed",
                queued_jobs=self.spooler.queued,
                detail=detail,
            )
        )

    async def _health_changed(self, up: bool, detail: str) -> None:
        self.health.set_queued(self.spooler.queued)
        self.health.set_paper_out(self.spooler.paper_out)
        if up:
            self.health.reading()
            await self.health.set_up(detail)
        else:
            await self.health.set_down(detail)

    def render(self, command: object) -> tuple[str, bytes] | None:
        if isinstance(command, PrintReceipt):
            if self.config.language != "escpos":
                return None
            return command.job_id, escpos.render_receipt(command.document)
        if isinstance(command, OpenDrawer):
            if self.config.language != "escpos":
                return None
            return command.job_id, escpos.render_drawer_kick()
        if isinstance(command, PrintLabel):
            if self.config.language != "zpl":
                return None
            return command.job_id, zpl.render_label(command.label)
        if isinstance(command, PrintBagLabel):
            if self.config.language != "zpl":
                return None
            return command.job_id, zpl.render_bag_label(command.label)
        if isinstance(command, PrintZpl):
            if self.config.language != "zpl":
                return None
            return command.job_id, command.zpl
        return None

    async def handle(self, command: object) -> None:
        job_id = getattr(command, "job_id", "")
        rendered = self.render(command)
        if rendered is None:
            detail = f"a {self.config.language} printer cannot take {type(command).__name__}"
            log.warning("printer %s: %s", self.config.device_id, detail)
            await self._publish_job(job_id, "failed", detail)
            return
        job_id, data = rendered
        try:
            queued = self.spooler.submit(job_id, data)
        except DeviceError as exc:
            await self._publish_job(job_id, "failed", exc.message)
            return
        self.health.set_queued(queued)
        detail = "printing" if self.spooler.up else f"printer down ({self.spooler.detail}); job held"
        await self._publish_job(job_id, "queued", detail)

    async def _publish_job(self, job_id: str, state: str, detail: str) -> None:
        await self.publish(
            PrintJobUpdate(
                device_id=self.config.device_id,
                job_id=job_id,
                state=state,  # type: ignore[arg-type]
                queued_jobs=self.spooler.queued,
                detail=detail,
            )
        )


async def run(
    config: PrinterConfig,
    publish: Publish,
    inbox: trio.abc.ReceiveChannel,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one printer until cancelled or the inbox closes (queued jobs are then dropped, and said so)."""
    printer = _Printer(config, publish)
    async with trio.open_nursery() as nursery:
        await nursery.start(printer.spooler.run)
        nursery.start_soon(printer.health.run)
        task_status.started()
        async for command in inbox:
            await printer.handle(command)
        if printer.spooler.queued:
            log.warning(
                "printer %s: stopping with %d jobs unprinted", config.device_id, printer.spooler.queued
            )
        nursery.cancel_scope.cancel()
