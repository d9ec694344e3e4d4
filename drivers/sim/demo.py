"""One of each simulated device, wired for ``storehub demo`` (and for end-to-end tests).

    async with trio.open_nursery() as nursery:
        devices = await nursery.start(run_demo_devices, "nci")
        devices.scale_config        # ScaleConfig pointing at the simulated scale's pty
        devices.scale.set_weight(3_540)
        devices.scanner.scan_now("1A4060300002EE1000012345")

Each simulator keeps its own control API (see its module); the configs are what the hub passes to the
device actors.
"""

from __future__ import annotations

import shutil
import tempfile

import msgspec
import trio

from drivers.sim.printer import PrinterSimulator
from drivers.sim.scale import ScaleSimulator
from drivers.sim.scanner import ScannerSimulator
from hub.domain.devices import (
    CashlessAtm,
    PaymentTerminalConfig,
    PrinterConfig,
    ScaleConfig,
    ScannerConfig,
    Secret,
)
from sandbox.spin import SpinEmulator


class DemoDevices(msgspec.Struct, kw_only=True):
    scale: ScaleSimulator
    scanner: ScannerSimulator
    receipt_printer: PrinterSimulator
    label_printer: PrinterSimulator
    payment_terminal: SpinEmulator  # a Dejavoo SPIn terminal (sandbox/spin.py), set up for cashless ATM too
    scale_config: ScaleConfig
    scanner_config: ScannerConfig
    receipt_printer_config: PrinterConfig
    label_printer_config: PrinterConfig
    payment_terminal_config: PaymentTerminalConfig


async def run_demo_devices(
    scale_protocol: str = "ad",
    *,
    register_id: str = "register-1",
    link_dir: str | None = None,
    task_status: trio.TaskStatus[DemoDevices] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start a scale (in ``scale_protocol``), a scanner, a receipt and a label printer and a payment
    terminal; ``task_status.started(DemoDevices)``; run until cancelled."""
    own_dir = link_dir is None
    link_dir = link_dir or tempfile.mkdtemp(prefix="storehub-demo-dev-")
    try:
        async with trio.open_nursery() as nursery:
            scale = await nursery.start(ScaleSimulator(scale_protocol, link_dir=link_dir).run)
            scanner = await nursery.start(ScannerSimulator(link_dir=link_dir).run)
            receipt = await nursery.start(PrinterSimulator().run)
            label = await nursery.start(PrinterSimulator().run)
            terminal = await nursery.start(SpinEmulator().run)
            scale.set_weight(0)
            task_status.started(
                DemoDevices(
                    scale=scale,
                    scanner=scanner,
                    receipt_printer=receipt,
                    label_printer=label,
                    payment_terminal=terminal,
                    scale_config=ScaleConfig(
                        device_id=f"scale-{scale_protocol}",
                        port=scale.path,
                        protocol=scale_protocol,
                        certificate="NTEP CC 20-045 (simulated)",
                        paired_with=register_id,
                    ),
                    scanner_config=ScannerConfig(
                        device_id="scanner-1", port=scanner.path, paired_with=register_id
                    ),
                    receipt_printer_config=PrinterConfig(
                        device_id="receipt-1", address=receipt.address, paired_with=register_id
                    ),
                    label_printer_config=PrinterConfig(
                        device_id="label-1", address=label.address, language="zpl", paired_with=register_id
                    ),
                    payment_terminal_config=PaymentTerminalConfig(
                        device_id="terminal-1",
                        address=terminal.url,
                        paired_with=register_id,
                        driver="spin",
                        tpn=terminal.tpn,
                        auth_key=Secret(terminal.auth_key),
                        cashless_atm=CashlessAtm(increment_cents=500, fee_cents=300),
                    ),
                )
            )
    finally:
        if own_dir:
            shutil.rmtree(link_dir, ignore_errors=True)
