"""Receipts to ESC/POS bytes, cash-drawer kick, paper status.

Rendering uses python-escpos's ``Dummy`` printer as a byte generator (it knows code pages and barcode
commands); the bytes go out through our own trio transport (``drivers.printer_transport``), never through
python-escpos's blocking transports. Sans-I/O.
"""

from __future__ import annotations

import logging

import msgspec
from escpos.printer import Dummy

from hub.domain.devices import ReceiptDocument

# ESC p m t1 t2: pulse connector pin 2 (m = 0) for 25 × 2 ms = 50 ms on, 250 × 2 ms = 500 ms off.
DRAWER_KICK_PARAMS = [27, 112, 0, 25, 250]
DRAWER_KICK = bytes(DRAWER_KICK_PARAMS)  # 1B 70 00 19 FA
# DLE EOT 4: transmit roll-paper sensor status (real-time: answered even while the buffer is busy).
PAPER_STATUS_REQUEST = b"\x10\x04\x04"
CUT = b"\x1dV\x00"  # GS V 0, full cut

# Status byte layout (python-escpos constants RT_MASK_*): bits 1 and 4 always 1, bits 0 and 7 always 0;
# bits 2–3 = paper near end, bits 5–6 = paper end.
_FIXED_MASK, _FIXED_BITS = 0x93, 0x12
_NEAR_END, _PAPER_END = 0x0C, 0x60

logging.getLogger("escpos").setLevel(logging.WARNING)  # it logs "Using hardware barcode renderer"


class PaperStatus(msgspec.Struct, frozen=True):
    paper_out: bool
    near_end: bool
    raw: int


def parse_paper_status(byte: int) -> PaperStatus | None:
    """The answer to ``DLE EOT 4``; None if the byte is not a status byte (line noise, wrong reply)."""
    if byte & _FIXED_MASK != _FIXED_BITS:
        return None
    return PaperStatus(paper_out=bool(byte & _PAPER_END), near_end=bool(byte & _NEAR_END), raw=byte)


def paper_status_byte(*, paper_out: bool = False, near_end: bool = False) -> int:
    """What a printer answers (for the simulator): 0x12 paper OK, 0x1E near end, 0x72 out."""
    return _FIXED_BITS | (_NEAR_END if near_end else 0) | (_PAPER_END if paper_out else 0)


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def _columns(left: str, right: str, width: int) -> str:
    room = width - len(right) - 1
    if len(left) > room:
        left = left[: max(room, 0)]
    return f"{left.ljust(room)} {right}"


def render_receipt(doc: ReceiptDocument, *, width: int = 42) -> bytes:
    """The whole receipt as ESC/POS bytes (80 mm paper, font A: 42 columns; 58 mm: 32)."""
    p = Dummy()
    p.hw("INIT")
    if doc.header_lines:
        p.set(align="center", bold=True, double_height=True, double_width=True)
        p.text(doc.header_lines[0] + "\n")
        p.set(align="center", normal_textsize=True)
        for line in doc.header_lines[1:]:
            p.text(line + "\n")
        p.text("\n")
    p.set(align="left", normal_textsize=True)
    for item in doc.items:
        label = f"{item.quantity} {item.description}".strip()
        p.text(_columns(label, money(item.amount_cents), width) + "\n")
        if item.detail:
            p.text(f"  {item.detail}"[:width] + "\n")
    if doc.totals:
        p.text("-" * width + "\n")
        for total in doc.totals:
            p.set(align="left", bold=total.emphasis, normal_textsize=True)
            p.text(_columns(total.label, money(total.amount_cents), width) + "\n")
        p.set(align="left", bold=False, normal_textsize=True)
    if doc.footer_lines:
        p.text("\n")
        p.set(align="center", normal_textsize=True)
        for line in doc.footer_lines:
            p.text(line + "\n")
    if doc.barcode:
        p.barcode("{B" + doc.barcode, "CODE128", function_type="B", height=60, width=2, pos="BELOW")
    if doc.open_drawer:
        # Kick as the receipt finishes: the drawer opens while the paper feeds.
        p.cashdraw(DRAWER_KICK_PARAMS)
    if doc.cut:
        p.cut()
    return p.output


def render_drawer_kick() -> bytes:
    """Open the drawer without printing (manager "no sale")."""
    return DRAWER_KICK
