"""What the counter hardware tells the hub, and what the hub asks of it.

Plain msgspec Structs, no I/O: device actors publish the output Structs (``ScaleReading``, ``Scan``,
``DeviceHealth``, ``PrintJobUpdate``, ``PaymentResult``, ``DeviceCommandResult``) and receive the command
Structs in their inbox. Weight in integer milligrams, money in integer cents, times in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

from drivers import payment, spin

ScaleState = Literal["stable", "motion", "overload", "underload", "error"]
DeviceKind = Literal["scale", "scanner", "printer", "payment_terminal"]
ScanKind = Literal[
    "metrc_package",  # 24-char Metrc package tag, 1A4…
    "biotrack_barcode",  # 16-digit BioTrack inventory id
    "upc_a",
    "ean_13",
    "ean_8",
    "upc_e",  # 8-digit UPC-E; ScanClass.data holds the UPC-A it expands to
    "metrc_retail_id",  # per-unit QR URL https://1a4.com/<short code>
    "aamva",  # driver's licence / state ID PDF417 payload
    "unknown",
]
Symbology = Literal["code128", "upc_a", "ean_13", "ean_8", "upc_e", "qr", "pdf417", "unknown"]
Parity = Literal["N", "E", "O", "M", "S"]


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------- config


class ScaleConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One legal-for-trade scale. ``port``: ``/dev/ttyUSB0``, ``/dev/serial/by-id/…`` or ``socket://h:p``.

    Serial settings left as ``None`` take the protocol's defaults (NCI is 7E1, the others 8N1).
    """

    device_id: str
    port: str
    protocol: str  # "ad", "mt-sics", "nci", "ohaus"
    certificate: str = ""  # NTEP Certificate of Conformance number, recorded on every weighed line
    baudrate: int | None = None
    bytesize: int | None = None
    parity: Parity | None = None
    stopbits: float | None = None
    mode: Literal["poll", "stream"] | None = None  # None: the protocol's default
    poll_interval_s: float = 0.25
    reply_timeout_s: float = 1.0  # no frame for this long while polling/streaming: device timeout
    capacity_mg: int | None = None  # readings above Max are overload even if the scale says otherwise
    paired_with: str = ""  # register id the readings are routed to
    # After a zero/tare is acknowledged as received, how long the scale may take to settle and say done
    # (A&D: second ACK or EC,E11, FX-i manual §15-2).
    settle_timeout_s: float = 10.0


class ScannerConfig(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    port: str
    suffix: str = "\r"  # what the scanner appends to each symbol (programmed in the scanner)
    prefix: str = ""
    baudrate: int = 9600
    bytesize: int = 8
    parity: Parity = "N"
    stopbits: float = 1
    frame_gap_s: float = 0.15  # idle gap that ends a multi-line (AAMVA) payload
    paired_with: str = ""  # register or picker id


class PrinterConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``address``: ``tcp://host:9100`` (or ``host:9100``), a serial path, or ``socket://host:port``."""

    device_id: str
    address: str
    language: Literal["escpos", "zpl"] = "escpos"
    status_check: bool = True  # ask paper status (DLE EOT 4 / ~HS) before each job
    status_timeout_s: float = 2.0
    connect_timeout_s: float = 3.0
    baudrate: int = 9600
    max_queued_jobs: int = 200
    paired_with: str = ""


class Secret(str):
    """A credential (a terminal's auth key): its ``repr`` never shows it, so a config in a log line or a
    traceback does not leak it."""

    def __repr__(self) -> str:
        return "'***'" if self else "''"


class CashlessAtm(msgspec.Struct, frozen=True, kw_only=True):
    """Cashless ATM on a terminal: the charge is a PIN-debit cash withdrawal rounded up to ``increment_cents``
    plus the processor's ``fee_cents``; the difference to the sale is handed back from the drawer."""

    increment_cents: int
    fee_cents: int = 0


WAIT_MARGIN_S = 10.0  # the hub's wait for a charge beyond the driver's worst case (event routing)


class PaymentTerminalConfig(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    # "generic": host:port of a gateway speaking drivers/payment.py's line JSON;
    # "spin": the SPIn proxy's base URL (https://spinpos.net, or the emulator)
    address: str
    charge_timeout_s: float = 90.0  # a customer needs time to insert the card and type the PIN
    connect_timeout_s: float = 3.0
    status_interval_s: float = 5.0
    paired_with: str = ""
    driver: Literal["generic", "spin"] = "generic"
    tpn: str = ""  # SPIn: the terminal profile number
    auth_key: str = ""  # SPIn: the merchant's auth key (a ``Secret``)
    payment_type: Literal["Debit", "Credit", "Card"] = "Debit"
    cashless_atm: CashlessAtm | None = None

    @property
    def wait_s(self) -> float:
        """How long the hub waits for a charge's result: the driver's own worst case (its timeout, the
        abort, every Status lookup, a partial approval's void) plus a margin, so the register never gives
        up first."""
        if self.driver == "spin":
            return (
                spin.worst_case_s(max(1, int(self.charge_timeout_s)), self.connect_timeout_s) + WAIT_MARGIN_S
            )

        return payment.worst_case_s(self.charge_timeout_s, self.connect_timeout_s) + WAIT_MARGIN_S


# --------------------------------------------------------------------------------------------- outputs


class ScaleReading(msgspec.Struct, frozen=True, kw_only=True):
    """One weight from one scale. Only ``stable`` readings above zero may price a weighed line."""

    device_id: str
    weight_mg: int
    stable: bool
    state: ScaleState
    at: datetime
    certificate: str = ""
    unit_shown: str = ""  # unit the scale displayed (g, kg, lb, oz, ct), for the operator

    @property
    def sellable(self) -> bool:
        # Design rule: bulk weight comes from a stable reading, never motion, overload or error.
        return self.state == "stable" and self.stable and self.weight_mg > 0


class Scan(msgspec.Struct, frozen=True, kw_only=True):
    """One scanned symbol, classified by content (not by which screen had focus)."""

    device_id: str
    kind: ScanKind
    data: str
    symbology: Symbology
    valid: bool = True
    reason: str = ""  # why ``valid`` is False, e.g. a wrong check digit
    at: datetime | None = None
    paired_with: str = ""


class DeviceHealth(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    kind: DeviceKind
    up: bool
    last_reading_age_s: float | None
    errors: int  # protocol errors and I/O failures counted since the actor started
    detail: str = ""
    at: datetime | None = None
    reconnects: int = 0
    queued_jobs: int = 0  # printers: jobs held while the printer is down
    paper_out: bool = False  # printers: the printer says its paper (a Zebra: its media) is out


class DeviceCommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """Answer to a zero/tare (or other) command sent through the actor inbox."""

    device_id: str
    command: str
    ok: bool
    detail: str = ""
    request_id: str = ""


PrintJobState = Literal["queued", "printed", "failed"]


class PrintJobUpdate(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    job_id: str
    state: PrintJobState
    queued_jobs: int
    detail: str = ""


# "unresolved": money may be taken and the terminal did not confirm giving it back (void at the terminal)
PaymentOutcome = Literal["approved", "declined", "timed_out", "offline", "cancelled", "error", "unresolved"]


class PaymentResult(msgspec.Struct, frozen=True, kw_only=True):
    """``timed_out``: the outcome is still unknown after the actor cancelled and asked the terminal;
    ``offline``: the terminal cannot be reached, so the register switches to cash only. ``recovered``: the
    terminal did not answer in time and this outcome was fetched from it afterwards (SPIn Status)."""

    device_id: str
    reference: str
    outcome: PaymentOutcome
    amount_cents: int
    auth_code: str = ""
    detail: str = ""
    at: datetime | None = None
    operation: Literal["sale", "void", "return"] = "sale"
    decline_code: str = ""  # the processor's code of a decline ("51"), for a plain reason at the register
    card_last4: str = ""
    recovered: bool = False


class PaymentProgress(msgspec.Struct, frozen=True, kw_only=True):
    """What the terminal is doing with a charge, for the register's "waiting" screen."""

    device_id: str
    reference: str
    state: Literal["waiting", "recovering"]
    detail: str = ""


# --------------------------------------------------------------------------------------------- documents


class ReceiptLine(msgspec.Struct, frozen=True, kw_only=True):
    description: str
    amount_cents: int
    quantity: str = ""  # already formatted: "2 x", "3.50 g"
    detail: str = ""  # second line: package tag, THC


class ReceiptTotal(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    amount_cents: int
    emphasis: bool = False


class ReceiptDocument(msgspec.Struct, frozen=True, kw_only=True):
    """A receipt as the printer should show it; the sale decides the content, the driver the bytes."""

    header_lines: list[str] = []
    items: list[ReceiptLine] = []
    totals: list[ReceiptTotal] = []
    footer_lines: list[str] = []
    barcode: str = ""  # receipt number as Code 128, for returns
    open_drawer: bool = False  # cash sales kick the drawer
    cut: bool = True


class PackageLabel(msgspec.Struct, frozen=True, kw_only=True):
    """Exit label for a package: the tag is printed as text and as Code 128."""

    tag: str
    product: str
    weight_mg: int
    thc_mg: int | None = None
    thc_percent_x100: int | None = None  # 23.45 % as 2345
    extra_lines: list[str] = []
    copies: int = 1


# --------------------------------------------------------------------------------------------- commands


class ZeroScale(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    request_id: str = ""


class TareScale(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    request_id: str = ""


class PrintReceipt(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    job_id: str
    document: ReceiptDocument


class PrintLabel(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    job_id: str
    label: PackageLabel


class BagLabel(msgspec.Struct, frozen=True, kw_only=True):
    """The label on an online order's bag: the order number (text and Code 128) and every package tag."""

    order_id: str
    customer: str
    fulfilment: str
    tags: list[str]


class PrintBagLabel(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    job_id: str
    label: BagLabel


class PrintZpl(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A label already rendered as ZPL (the jurisdiction's template, hub/domain/labels.py)."""

    job_id: str
    zpl: bytes


class OpenDrawer(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Kick the drawer without a receipt (manager "no sale", counted in the audit log by the hub)."""

    job_id: str


class Charge(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    reference: str  # sale id; the terminal uses it to refuse a duplicate charge
    amount_cents: int


class CancelCharge(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    reference: str


class VoidCharge(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Take back an approved charge (same batch): a failed sale commit, a voided sale."""

    reference: str
    amount_cents: int


class RefundCharge(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A return to the customer's card: a new attempt with its own reference."""

    reference: str
    amount_cents: int


class TerminalStatusRequest(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    request_id: str = ""


ScaleCommand = ZeroScale | TareScale
PrinterCommand = PrintReceipt | PrintLabel | OpenDrawer
PaymentCommand = Charge | CancelCharge | VoidCharge | RefundCharge | TerminalStatusRequest
