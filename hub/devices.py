"""Devices in the hub: one supervised actor per scale, scanner, printer and payment terminal.

The device actors (``actors/``) speak to the hardware and publish ``ScaleReading``, ``Scan``,
``DeviceHealth``, ``PrintJobUpdate`` and ``PaymentResult``. This module routes what they publish to the
register each device is paired with, keeps device health for the registers, the back office and
``/metrics``, prints receipts after sales (kicking the drawer on cash), and gives the sale a card-terminal
handle. In the demo it starts one simulator of each kind on pseudo-terminals and loopback TCP.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from actors import payment_terminal, printer, scale, scanner
from drivers.paybybank import AeropayProvider
from drivers.sim.demo import run_demo_devices
from hub.access import HandlerTable
from hub.catalogue.labels import print_label
from hub.commands import Request
from hub.device_health import DeviceStatus
from hub.domain import devices as dev
from hub.domain.receipt import SaleRecord, tender_rows
from hub.errors import HubError
from hub.sale import inventory as inv
from hub.sale import protocol as sale_protocol
from hub.sale import reversals
from hub.sale.context import Refused, ScaleState, ctx_of
from hub.sale.protocol import PrintExitLabel
from hub.store.keys import u64
from hub.supervisor import ChildSpec
from sandbox.paybybank import PayByBankEmulator

if TYPE_CHECKING:
    from drivers.sim.demo import DemoDevices
    from hub.app import Hub
    from hub.config import DeviceSection
    from hub.domain.receipt import Receipt
    from hub.domain.tender import Settlement
    from hub.services import Services
    from hub.supervisor import Supervisor

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()

log = logging.getLogger("hub.devices")
OUTCOME_STATUS = {
    "approved": "approved",
    "declined": "declined",
    "timed_out": "timeout",
    "offline": "offline",
    "cancelled": "cancelled",
    "error": "error",
    "unresolved": "unresolved",
}


class ChargeOutcome(msgspec.Struct, kw_only=True):
    status: str
    approval_code: str = ""
    message: str = ""
    card_last4: str = ""
    decline_code: str = ""
    recovered: bool = False  # timed out, then the real outcome was fetched from the terminal
    amount_cents: int = 0  # "unresolved": what the terminal may hold


Progress = Callable[[dev.PaymentProgress], None]


class TerminalHandle:
    """What the sale needs of a card terminal: ``charge``, ``cancel``, ``void``, ``refund``, ``up``.

    Every call waits for its ``PaymentResult`` at most ``config.wait_s``: longer than the terminal's own
    timeout plus the abort and the status lookup, so the register never gives up before the terminal."""

    def __init__(
        self,
        device_id: str,
        inbox: trio.MemorySendChannel[Any],
        config: dev.PaymentTerminalConfig | None = None,
    ) -> None:
        self.device_id = device_id
        self.inbox = inbox
        self.config = config
        self.up = False
        # every caller waiting for (operation, reference): a retried void may overlap with another
        self._waiting: dict[tuple[str, str], list[trio.MemorySendChannel[dev.PaymentResult]]] = {}
        self._progress: dict[str, Progress] = {}
        # a sale result nobody waits for any more (DeviceHub: an approval is voided, audited)
        self.on_orphan: Callable[[dev.PaymentResult], None] | None = None

    @property
    def wait_s(self) -> float:
        return self.config.wait_s if self.config is not None else 180.0

    @property
    def cashless_atm(self) -> dev.CashlessAtm | None:
        return self.config.cashless_atm if self.config is not None else None

    async def _call(self, operation: str, command: Any, reference: str) -> dev.PaymentResult:
        send, recv = trio.open_memory_channel[dev.PaymentResult](1)
        key = (operation, reference)
        self._waiting.setdefault(key, []).append(send)
        try:
            await self.inbox.send(command)
            with trio.fail_after(self.wait_s):
                return await recv.receive()
        except BaseException:
            if operation == "sale":
                self._give_up(reference, recv)
            raise
        finally:
            waiting = self._waiting.get(key, [])
            if send in waiting:
                waiting.remove(send)
            if not waiting:
                self._waiting.pop(key, None)

    def _give_up(self, reference: str, recv: trio.MemoryReceiveChannel[dev.PaymentResult]) -> None:
        """The hub stops waiting for a charge (too slow, or ``pay`` cancelled): tell the terminal to stop,
        and treat a result that already arrived as one nobody waits for."""
        try:
            self.inbox.send_nowait(dev.CancelCharge(reference=reference))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            log.error("could not ask terminal %s to cancel %s", self.device_id, reference)
        try:
            late = recv.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return
        self._orphan(late)

    def _orphan(self, result: dev.PaymentResult) -> None:
        if self.on_orphan is not None:
            self.on_orphan(result)
        else:
            log.error("card payment %s: %s result with nobody waiting", result.reference, result.outcome)

    async def charge(
        self, amount_cents: int, reference: str, on_progress: Progress | None = None
    ) -> ChargeOutcome:
        if not self.up:
            return ChargeOutcome(status="offline", message="The card terminal is offline: cash only for now.")
        if on_progress is not None:
            self._progress[reference] = on_progress
        try:
            result = await self._call(
                "sale", dev.Charge(reference=reference, amount_cents=amount_cents), reference
            )
        finally:
            self._progress.pop(reference, None)
        return _outcome(result)

    async def refund(self, amount_cents: int, reference: str) -> ChargeOutcome:
        if not self.up:
            return ChargeOutcome(status="offline", message="The card terminal is offline.")
        result = await self._call(
            "return", dev.RefundCharge(reference=reference, amount_cents=amount_cents), reference
        )
        return _outcome(result)

    async def void(self, reference: str, amount_cents: int) -> bool:
        result = await self._call(
            "void", dev.VoidCharge(reference=reference, amount_cents=amount_cents), reference
        )
        return result.outcome == "approved"

    async def cancel(self, reference: str) -> None:
        await self.inbox.send(dev.CancelCharge(reference=reference))

    def resolve(self, result: dev.PaymentResult) -> None:
        delivered = False
        for ch in self._waiting.get((result.operation, result.reference), []):
            try:
                ch.send_nowait(result)
                delivered = True
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        if not delivered and result.operation == "sale":  # a late approval must not keep the customer's money
            self._orphan(result)

    def progress(self, p: dev.PaymentProgress) -> None:
        listener = self._progress.get(p.reference)
        if listener is not None:
            listener(p)


def _outcome(result: dev.PaymentResult) -> ChargeOutcome:
    return ChargeOutcome(
        status=OUTCOME_STATUS.get(result.outcome, "error"),
        approval_code=result.auth_code,
        message=result.detail if result.outcome != "approved" else "",
        card_last4=result.card_last4,
        decline_code=result.decline_code,
        recovered=result.recovered,
        amount_cents=result.amount_cents,
    )


class DeviceHub:
    """The devices of one hub: their inboxes, who they are paired with, and their latest health."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.inboxes: dict[str, trio.MemorySendChannel[Any]] = {}
        self.paired: dict[str, str] = {}  # device id -> register id
        self.kinds: dict[str, str] = {}
        self.errors_seen: dict[str, int] = {}
        self._scan_ids = itertools.count(1)
        self.specs: list[tuple[str, Any, Any]] = []  # (device id, actor run, config)
        # card payments to give back (late approvals, unconfirmed voids): hub/sale/reversals.py
        self.reversals_in, self._reversals_out = trio.open_memory_channel[dev.PaymentResult](256)

    def next_id(self) -> str:
        """A message id part for a scan or a print job, unique across restarts (the boot id and a counter):
        stored replies outlive a restart, so a counter alone would make the first scans after it repeats."""
        return f"{self.hub.boot_id}-{next(self._scan_ids)}"

    def add(self, device_id: str, kind: str, register_id: str, run: Any, config: Any) -> None:
        send, recv = trio.open_memory_channel[Any](64)
        self.inboxes[device_id] = send
        self.paired[device_id] = register_id
        self.kinds[device_id] = kind
        self.specs.append((device_id, functools.partial(run, config, self.publish, recv), config))
        self.hub.services.device_health[device_id] = DeviceStatus(
            id=device_id, kind=kind, register=register_id
        )
        self.hub.metrics.device(device_id, kind)  # every series at 0 from the start
        if kind == "payment_terminal":
            handle = TerminalHandle(
                device_id, send, config if isinstance(config, dev.PaymentTerminalConfig) else None
            )
            handle.on_orphan = self.orphaned
            self.hub.services.terminal_handles[device_id] = handle
            if self.hub.services.sale is not None:  # added after the sale's setup (the demo's devices)
                self.hub.services.sale.terminals[device_id] = handle

    async def start(self, hub: Hub, sup: Supervisor) -> None:
        ctx = ctx_of(hub.services)
        for device_id, handle in hub.services.terminal_handles.items():
            ctx.terminals[device_id] = handle
        for device_id, run, _config in self.specs:
            await sup.start(ChildSpec(name=f"device:{device_id}", run=run, max_restarts=10, window=60))
        if hub.services.terminal_handles:
            run_reversals = functools.partial(reversals.run, hub, self._reversals_out)
            await sup.start(ChildSpec(name="card-reversals", run=run_reversals, max_restarts=10, window=60))

    def orphaned(self, result: dev.PaymentResult) -> None:
        """A sale's result that nobody waits for: an approval (or money the terminal may hold) is given
        back by hub/sale/reversals.py, recorded and audited first; anything else is only logged."""
        if result.outcome == "unresolved":
            return  # queued by ``publish`` already, waiter or not
        if result.outcome != "approved":
            log.warning(
                "card payment %s ended %s after the register stopped waiting",
                result.reference,
                result.outcome,
            )
            return
        try:
            self.reversals_in.send_nowait(result)
        except trio.WouldBlock:
            log.error(
                "card payment %s approved with nobody waiting: void it at the terminal", result.reference
            )

    # ---- what the device actors publish ----
    async def publish(self, msg: Any) -> None:
        try:
            if isinstance(msg, dev.ScaleReading):
                self._reading(msg)
            elif isinstance(msg, dev.Scan):
                await self._scan(msg)
            elif isinstance(msg, dev.DeviceHealth):
                self._health(msg)
            elif isinstance(msg, dev.PaymentResult):
                handle = self.hub.services.terminal_handles.get(msg.device_id)
                if msg.outcome == "unresolved" and msg.operation == "sale":
                    # money may be held (a partial approval whose void failed): a pending reversal first,
                    # whether or not the register still waits
                    self.reversals_in.send_nowait(msg)
                if handle is not None:
                    handle.resolve(msg)
            elif isinstance(msg, dev.PaymentProgress):
                handle = self.hub.services.terminal_handles.get(msg.device_id)
                if handle is not None:
                    handle.progress(msg)
            elif isinstance(msg, dev.PrintJobUpdate):
                status = self.hub.services.device_health.get(msg.device_id)
                if status is not None:
                    status.print_job(msg.queued_jobs, failed=msg.state == "failed", detail=msg.detail)
                self._publish_register(msg.device_id)
        except Exception:  # a routing bug must not take the device actor down with it
            log.exception("could not route %s", type(msg).__name__)

    def kind_of(self, device_id: str, reported: str) -> str:
        return self.kinds.get(device_id, reported)

    def _register(self, device_id: str) -> Any:
        return self.hub.registers.get(self.paired.get(device_id, ""))

    def _publish_register(self, device_id: str) -> None:
        actor = self._register(device_id)
        if actor is not None:
            actor.publish()

    def _reading(self, r: dev.ScaleReading) -> None:
        ctx = ctx_of(self.hub.services)
        prev = ctx.scales.get(r.device_id)
        ctx.scales[r.device_id] = ScaleState(
            device=r.device_id,
            weight_mg=r.weight_mg,
            stable=r.stable,
            state=r.state,
            up=True,
            certificate=r.certificate,
            at=r.at,
        )
        self.hub.metrics.device_last_reading.labels(r.device_id, self.kind_of(r.device_id, "scale")).set(
            time.time()
        )
        if prev is None or (prev.weight_mg, prev.stable, prev.state, prev.up) != (
            r.weight_mg,
            r.stable,
            r.state,
            True,
        ):
            self._publish_register(r.device_id)

    async def _scan(self, s: dev.Scan) -> None:
        actor = self._register(s.device_id)
        if actor is None:
            log.warning("scan from %s, which is not paired with a register", s.device_id)
            return
        msg = sale_protocol.Scan(id=f"{s.device_id}-{self.next_id()}", data=s.data, source="serial")
        try:
            await actor.mailbox.call(actor.device_request(msg), timeout=30)
        except HubError as exc:
            log.info("scan on %s refused: %s", actor.id, exc.message)
        except trio.TooSlowError:
            log.warning("register %s did not take a scan in time", actor.id)

    def _health(self, h: dev.DeviceHealth) -> None:
        m = self.hub.metrics
        # the configured kind labels the series (a label printer's actor reports as "printer")
        kind = self.kind_of(h.device_id, h.kind)
        m.device_up.labels(h.device_id, kind).set(1 if h.up else 0)
        seen = self.errors_seen.get(h.device_id, 0)
        if h.errors > seen:
            m.device_errors.labels(h.device_id, kind).inc(h.errors - seen)
        self.errors_seen[h.device_id] = h.errors
        if h.last_reading_age_s is not None:
            m.device_last_reading.labels(h.device_id, kind).set(time.time() - h.last_reading_age_s)
        if kind in ("printer", "label_printer"):
            m.printer_queued_jobs.labels(h.device_id, kind).set(h.queued_jobs)
            m.printer_paper_out.labels(h.device_id, kind).set(1 if h.paper_out else 0)
        health = self.hub.services.device_health
        status = health.get(h.device_id)
        if status is None:  # a device that was never added (every added one has its record from the start)
            status = health[h.device_id] = DeviceStatus(
                id=h.device_id, kind=h.kind, register=self.paired.get(h.device_id)
            )
            status.report(h)
            changed = True
        else:
            changed = status.report(h)
        ctx = ctx_of(self.hub.services)
        if h.kind == "scale" and not h.up and h.device_id in ctx.scales:
            ctx.scales[h.device_id].up = False
            ctx.scales[h.device_id].state = "down"
            ctx.scales[h.device_id].stable = False
        handle = self.hub.services.terminal_handles.get(h.device_id)
        if handle is not None:
            handle.up = h.up
        if changed:
            self._publish_register(h.device_id)

    # ---- after a sale: print the receipt, kick the drawer on cash ----
    def after_sale(self, hub: Hub, register_id: str, receipt_number: int, settlement: Settlement) -> None:
        reg = hub.config.register(register_id)
        printer = (reg.printer if reg else "") or next(
            (d for d, r in self.paired.items() if r == register_id and self.kinds[d] == "printer"), ""
        )
        inbox = self.inboxes.get(printer)
        if inbox is None:
            return
        rec = hub.store.get("sales", u64(receipt_number), SaleRecord)
        if rec is None:
            return
        doc = receipt_document(rec.receipt, open_drawer=settlement.cash_received_cents > 0)
        try:
            inbox.send_nowait(dev.PrintReceipt(job_id=f"receipt-{receipt_number}", document=doc))
        except trio.WouldBlock:
            log.warning("printer %s queue full; receipt %d not printed", printer, receipt_number)


def receipt_document(r: Receipt, *, open_drawer: bool) -> dev.ReceiptDocument:
    """The printed receipt: the same document as the screen's, in the printer's terms."""
    items = []
    for ln in r.lines:
        qty = (
            f"{ln.weight_mg / 1000:.3f}".rstrip("0").rstrip(".") + " g"
            if ln.sold_by == "weight"
            else f"{ln.quantity} x"
        )
        items.append(
            dev.ReceiptLine(
                description=ln.name, amount_cents=ln.total_cents, quantity=qty, detail=f"Pkg {ln.package_tag}"
            )
        )
    totals = [dev.ReceiptTotal(label="Subtotal", amount_cents=r.subtotal_cents)]
    if r.discount_cents:
        totals.append(dev.ReceiptTotal(label="Discounts", amount_cents=-r.discount_cents))
    totals += [dev.ReceiptTotal(label=t.name, amount_cents=t.amount_cents) for t in r.taxes]
    totals.append(dev.ReceiptTotal(label="TOTAL", amount_cents=r.total_cents, emphasis=True))
    totals += [
        dev.ReceiptTotal(label=label, amount_cents=amount)
        for label, amount in tender_rows(r)
        if amount or not label.startswith("Change")
    ]
    footer = [f"{a.bucket}: {a.left}" for a in r.allotment_left] + [r.rounding_note]
    return dev.ReceiptDocument(
        header_lines=[
            r.store.name,
            r.store.address,
            f"Licence {r.store.licence}",
            f"Receipt {r.receipt_number}  {r.sold_at_local.replace('T', ' ')}",
            f"Cashier {r.cashier}",
        ],
        items=items,
        totals=totals,
        footer_lines=[f for f in footer if f],
        barcode=str(r.receipt_number),
        open_drawer=open_drawer,
    )


def _configured(section: DeviceSection, register_id: str) -> tuple[str, Any, Any]:
    parity = section.parity
    if section.kind == "scale":
        return (
            "scale",
            scale.run,
            dev.ScaleConfig(
                device_id=section.id,
                port=section.port,
                protocol=section.protocol or "ad",
                certificate=section.certificate,
                baudrate=section.baudrate,
                bytesize=section.bytesize,
                parity=parity,
                stopbits=section.stopbits,
                poll_interval_s=section.poll_seconds,
                paired_with=register_id,
            ),
        )
    if section.kind == "scanner":
        return (
            "scanner",
            scanner.run,
            dev.ScannerConfig(
                device_id=section.id,
                port=section.port,
                suffix=section.suffix,
                baudrate=section.baudrate,
                bytesize=section.bytesize,
                parity=parity,
                stopbits=section.stopbits,
                paired_with=register_id,
            ),
        )
    if section.kind in ("printer", "label_printer"):
        return (
            "printer",
            printer.run,
            dev.PrinterConfig(
                device_id=section.id,
                address=section.port,
                language="zpl" if section.kind == "label_printer" else "escpos",
                baudrate=section.baudrate,
                paired_with=register_id,
            ),
        )
    address = section.port if section.driver == "spin" else section.port.removeprefix("tcp://")
    atm = (
        dev.CashlessAtm(
            increment_cents=section.cashless_atm_increment_cents, fee_cents=section.cashless_atm_fee_cents
        )
        if section.cashless_atm_increment_cents
        else None
    )
    return (
        "payment_terminal",
        payment_terminal.run,
        dev.PaymentTerminalConfig(
            device_id=section.id,
            address=address,
            paired_with=register_id,
            driver=section.driver,
            tpn=section.tpn,
            auth_key=dev.Secret(section.auth_key),
            payment_type=section.payment_type,
            charge_timeout_s=section.charge_timeout_seconds,
            cashless_atm=atm,
        ),
    )


def add_configured(devices: DeviceHub) -> None:
    """The devices store.toml pairs with each register (a device shared by two registers is added once)."""
    config = devices.hub.config
    for reg in config.registers:
        for attr in ("scale", "scanner", "printer", "label_printer", "payment_terminal"):
            ref = getattr(reg, attr)
            section = config.device(ref) if ref else None
            if section is not None and section.id not in devices.paired:
                kind, run, cfg = _configured(section, reg.id)
                devices.add(section.id, kind, reg.id, run, cfg)


class ScaleSimControl:
    """The demo scale's weight, set from the register's demo panel."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def set(self, weight_mg: int, *, motion: bool) -> None:
        self.sim.set_weight(weight_mg, motion=motion)


class TerminalSimControl:
    """The demo's card terminal is the SPIn emulator (sandbox/spin.py)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def set_mode(self, mode: str, *, decline_code: str = "51", timeout_seconds: float = 120.0) -> None:
        self.sim.mode = mode
        self.sim.decline_host_code = decline_code
        self.sim.proxy_timeout_s = timeout_seconds


async def start_demo_devices(devices: DeviceHub, protocol: str, hub: Hub, sup: Supervisor) -> None:
    """The demo's first register gets one simulated device of each kind (real bytes on ptys and TCP)."""
    register_id = hub.config.registers[0].id
    demo = hub.services.demo
    sims: DemoDevices = await sup.start_task(
        functools.partial(run_demo_devices, protocol, register_id=register_id)
    )
    demo.devices = sims
    demo.scale[register_id] = ScaleSimControl(sims.scale)
    demo.terminal[register_id] = TerminalSimControl(sims.payment_terminal)
    devices.add(sims.scale_config.device_id, "scale", register_id, scale.run, sims.scale_config)
    devices.add(sims.scanner_config.device_id, "scanner", register_id, scanner.run, sims.scanner_config)
    devices.add(
        sims.receipt_printer_config.device_id,
        "printer",
        register_id,
        printer.run,
        sims.receipt_printer_config,
    )
    devices.add(
        sims.payment_terminal_config.device_id,
        "payment_terminal",
        register_id,
        payment_terminal.run,
        sims.payment_terminal_config,
    )
    devices.add(
        sims.label_printer_config.device_id,
        "label_printer",
        register_id,
        printer.run,
        sims.label_printer_config,
    )
    # the demo register prints on the simulated receipt printer
    devices.paired[sims.receipt_printer_config.device_id] = register_id
    # pay by bank: an Aeropay-shaped emulator whose customer approves on the phone two seconds later
    if hub.services.pay_by_bank is None:
        bank: PayByBankEmulator = await sup.start_task(PayByBankEmulator().run)
        bank.auto, bank.auto_after_s = "approve", 2.0
        demo.pay_by_bank = bank
        hub.services.pay_by_bank = AeropayProvider(
            bank.url, merchant_id=bank.merchant_id, api_key=bank.api_key, api_secret=bank.api_secret
        )


@HANDLERS.handles(PrintExitLabel)
async def print_exit_label(req: Request, msg: PrintExitLabel) -> Any:
    if req.services.catalogue is not None:
        # the jurisdiction's label template: warning, potency, licence, dates, COA QR (hub/catalogue/labels.py)
        return await print_label(req, req.register_id, msg.tag, "exit", msg.copies)

    devices = _devices(req.services)
    reg = req.config.register(req.register_id)
    printer_id = (reg.label_printer if reg else "") or next(
        (
            d
            for d, r in devices.paired.items()
            if r == req.register_id and devices.kinds[d] == "label_printer"
        ),
        "",
    )
    inbox = devices.inboxes.get(printer_id)
    if inbox is None:
        raise Refused("No label printer is connected to this register.", code="no_label_printer")
    pkg = inv.package(req.store, msg.tag.strip())
    product = inv.product(req.store, pkg.product_id) if pkg else None
    if pkg is None or product is None:
        raise Refused("This package tag is not in the store's inventory.", code="unknown_package")
    weight = pkg.quantity if product.sold_by == "weight" else product.limits.net_weight_mg
    label = dev.PackageLabel(
        tag=pkg.tag,
        product=f"{product.brand} {product.name}",
        weight_mg=weight,
        thc_mg=product.limits.thc_mg or None,
        thc_percent_x100=product.thc_bp or None,
        extra_lines=[f"Batch {pkg.batch}"] if pkg.batch else [],
        copies=msg.copies,
    )
    job_id = f"label-{pkg.tag}-{devices.next_id()}"
    await inbox.send(dev.PrintLabel(job_id=job_id, label=label))
    return {"job_id": job_id, "printer": printer_id}


def _devices(services: Services) -> DeviceHub:
    devices = services.devices
    if devices is None:
        raise Refused("This hub runs no devices.", code="no_devices")
    return devices


@HANDLERS.handles(sale_protocol.ScaleZero)
async def scale_zero(req: Request, msg: sale_protocol.ScaleZero) -> Any:
    return await _scale_command(req, dev.ZeroScale(request_id=msg.id))


@HANDLERS.handles(sale_protocol.ScaleTare)
async def scale_tare(req: Request, msg: sale_protocol.ScaleTare) -> Any:
    return await _scale_command(req, dev.TareScale(request_id=msg.id))


async def _scale_command(req: Request, command: Any) -> Any:
    devices = _devices(req.services)
    scale_id = next(
        (d for d, r in devices.paired.items() if r == req.register_id and devices.kinds[d] == "scale"), ""
    )
    inbox = devices.inboxes.get(scale_id)
    if inbox is None:
        raise Refused("No scale is connected to this register.", code="no_scale")
    await inbox.send(command)
    return {"sent": type(command).__name__, "at": datetime.now(UTC).isoformat()}
