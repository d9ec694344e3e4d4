"""NCI / Brecknell / Avery Weigh-Tronix (NCI 3825/3835, 6702, 67XXU, 7800, 7821, SCP-01, SCP-12) at 9600 7E1.

The documented frames (every variant below is accepted; where the documents differ, each is named):

* ``W<CR>`` → ``<LF>xxxx.xxuu<CR><LF>hh<CR><ETX>``: the displayed weight with its ANSI unit (``lb``,
  ``kg``, ``oz``, ``g``), then the status bytes on their own line (Avery Weigh-Tronix 7821 §6.3, NCI 7800
  manual p.32, Brecknell 3700LP p.11, Brecknell 67XXU service manual pp.64/68; java-nci tested on a 6710U).
  Example: ``0a 20 20 31 2e 32 35 6c 62 0d 0a 30 30 0d 03`` = 1.25 lb, stable.
  Grams may be padded on both sides (``<LF> 1234g <CR>``, 3700LP p.11); ``lb:oz`` prints
  ``1lb 2.5oz`` (67XXU p.64). All upper bars (over capacity) fill the field with ``^``, lower bars
  (under capacity) with ``_``, middle bars (zero-point error) with ``-`` (NCI 6702 manual p.14).
* ``S<CR>`` and ``Z<CR>`` (and ``T<CR>``, SCP-12 / 67XXU) → ``<LF>hh<CR><ETX>``: status only.
* 67XXU in OPOS mode puts an ``S`` before the status bytes: ``<LF>S hh<CR><ETX>`` (67XXU p.68).
* Unknown command → ``<LF>?<CR>`` (SCP-01 as read by chris-rudmin/serial-nci-scale), ``<LF>?<CR><ETX>``
  (3700LP p.11), ``<LF>? <CR><ETX>`` (67XXU p.65), ``<CR>?<LF>`` (B-TEK T419S manual p.66).
* A short form without the LF before the status, ``<LF>weight<CR>hh<ETX>`` (chris-rudmin/serial-nci-scale,
  devices.md §1), is still read.

Status (NCI 6702 manual p.14; Ohaus Aviator 7000 service manual p.49 has the same table): at least two
bytes; bits 4 and 5 always 1; bit 6 set means another status byte follows (never in byte 1); bit 7 parity.
Byte 1: bit0 motion, bit1 at zero, bit2 RAM error, bit3 EEPROM error. Byte 2: bit0 under capacity,
bit1 over capacity, bit2 ROM error, bit3 calibration error. Byte 3: bits 0-1 range (00 low, 11 high),
bit2 net weight, bit3 initial zero error. Byte 4: bit0 weight changed, bit1 zero seen, bit2 metric.
"""

from __future__ import annotations

import re
from typing import ClassVar

from drivers.scales.base import (
    MAX_FRAME_BYTES,
    CommandReply,
    FrameError,
    ScaleCodec,
    ScaleEvent,
    SerialDefaults,
    WeightFrame,
    format_number,
    to_mg,
    unit_name,
)

LF, CR, ETX = 0x0A, 0x0D, 0x03

MOTION, AT_ZERO, RAM_ERROR, EEPROM_ERROR = 0x01, 0x02, 0x04, 0x08
UNDER_CAPACITY, OVER_CAPACITY, ROM_ERROR, CALIBRATION_ERROR = 0x01, 0x02, 0x04, 0x08
HIGH_RANGE, NET_WEIGHT, INITIAL_ZERO_ERROR = 0x03, 0x04, 0x08
BYTE_FOLLOWS = 0x40
STATUS_BASE = 0x30  # bits 4 and 5 always 1
MAX_STATUS_BYTES = 4  # "at this time only the first three bytes are defined" (6702 p.14); Aviator has 4

_NUMBER_UNIT = re.compile(r"^\s*(?P<num>-?\s*\d*\.?\d+)\s*(?P<unit>[A-Za-z]{1,3})\s*$")
_LB_OZ = re.compile(r"^\s*(?P<lb>-?\s*\d+)\s*lb\s*(?P<oz>\d*\.?\d+)\s*oz\s*$", re.IGNORECASE)
_BARS = re.compile(r"^\s*(?P<bars>[\^_\- ]*[\^_-][\^_\- ]*)(?P<unit>[A-Za-z:]{0,5})\s*$")


class NCIStatus:
    """The status bytes, decoded. ``ok`` is False when the bytes break the documented grammar."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.ok = _valid_status(raw)
        b1 = raw[0] if raw else 0
        b2 = raw[1] if len(raw) > 1 else 0
        b3 = raw[2] if len(raw) > 2 else None
        self.motion = bool(b1 & MOTION)
        self.at_zero = bool(b1 & AT_ZERO)
        self.under = bool(b2 & UNDER_CAPACITY)
        self.over = bool(b2 & OVER_CAPACITY)
        self.net = b3 is not None and bool(b3 & NET_WEIGHT)
        self.high_range = b3 is not None and (b3 & HIGH_RANGE) == HIGH_RANGE
        self.faults = [
            name
            for present, name in (
                (b1 & RAM_ERROR, "RAM error"),
                (b1 & EEPROM_ERROR, "EEPROM error"),
                (b2 & ROM_ERROR, "ROM error"),
                (b2 & CALIBRATION_ERROR, "calibration error"),
                (b3 is not None and b3 & INITIAL_ZERO_ERROR, "initial zero error"),
            )
            if present
        ]

    @property
    def state(self) -> str:
        if self.faults:
            return "error"
        if self.over:
            return "overload"
        if self.under:
            return "underload"
        return "motion" if self.motion else "stable"

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(
            name
            for present, name in (
                (self.at_zero, "at_zero"),
                (self.net, "net"),
                (self.high_range, "high_range"),
            )
            if present
        )


def _valid_status(raw: bytes) -> bool:
    """Two to four bytes, each 0b0x11xxxx; bit 6 set on every byte but the last, and never on byte 1."""
    if not 2 <= len(raw) <= MAX_STATUS_BYTES:
        return False
    if any(b & 0xB0 != STATUS_BASE for b in raw):
        return False
    if raw[0] & BYTE_FOLLOWS:
        return False
    return all(bool(b & BYTE_FOLLOWS) == (i < len(raw) - 1) for i, b in enumerate(raw) if i >= 1)


class NCICodec(ScaleCodec):
    name: ClassVar[str] = "nci"
    serial_defaults: ClassVar[SerialDefaults] = SerialDefaults(baudrate=9600, bytesize=7, parity="E")
    poll_request: ClassVar[bytes] = b"W\r"
    stream_request: ClassVar[bytes | None] = None
    zero_request: ClassVar[bytes] = b"Z\r"
    # SCP-12 / 67XXU tare; scales without it answer "?", reported as a refused command.
    tare_request: ClassVar[bytes] = b"T\r"

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()

    def reset(self) -> None:
        super().reset()
        self._buf.clear()

    def feed(self, data: bytes) -> list[ScaleEvent]:
        # A port opened 8N1 by mistake shows the parity bit in bit 7: strip it, as a 7E1 UART would.
        self._buf += bytes(b & 0x7F for b in data)
        events: list[ScaleEvent] = []
        while self._buf:
            start = self._buf.find(LF)
            if start < 0:
                if len(self._buf) > MAX_FRAME_BYTES:
                    events.append(FrameError("no frame start", bytes(self._buf[-MAX_FRAME_BYTES:])))
                    self._buf.clear()
                break
            if start > 0:
                junk = bytes(self._buf[:start])
                del self._buf[:start]
                if junk.strip(b"\r\x03") == b"?":  # B-TEK T419S: <CR>?<LF> for an unknown command
                    del self._buf[:1]
                    events.append(self._unknown_command(junk + b"\n"))
                    continue
                if junk.strip(b"\r\x03"):
                    events.append(FrameError("bytes outside a frame", junk))
            while self._buf[1:2] == b"\n":  # an empty line (the LF after B-TEK's "?"): not a frame start
                del self._buf[:1]
            if self._buf[1:2] == b"?":
                cr = self._buf.find(CR, 1)
                if cr < 0:
                    if len(self._buf) > 8:
                        events.append(FrameError("bad '?' reply", bytes(self._buf[:8])))
                        del self._buf[:1]
                        continue
                    break
                end = cr + 1
                if self._buf[end : end + 1] == b"\x03":
                    end += 1
                raw = bytes(self._buf[:end])
                del self._buf[:end]
                events.append(self._unknown_command(raw))
                continue
            end = self._buf.find(ETX)
            if end < 0:
                if len(self._buf) > MAX_FRAME_BYTES:
                    events.append(FrameError("frame too long", bytes(self._buf[:MAX_FRAME_BYTES])))
                    del self._buf[:1]  # resync on the next LF
                    continue
                break
            frame = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            events.append(self._parse(frame))
        return events

    def _unknown_command(self, raw: bytes) -> ScaleEvent:
        del raw  # kept out of the reply: the bytes vary by model and say nothing more than "?"
        return CommandReply(self._take_pending(), False, "scale does not know this command")

    def _parse(self, frame: bytes) -> ScaleEvent:
        body = frame[1:-1]  # between the first LF and ETX
        if not body.endswith(b"\r"):
            # Short form <LF>weight<CR>hh<ETX> (chris-rudmin/serial-nci-scale)
            cr = body.rfind(b"\r")
            if cr < 0:
                return FrameError("no CR in frame", frame)
            payload, status_text = body[:cr], body[cr + 1 :]
        else:
            lines = body[:-1].split(b"\r")
            if len(lines) == 1:  # <LF>hh<CR><ETX>: the answer to S, Z or T
                payload, status_text = b"", lines[0]
            elif len(lines) == 2 and lines[1].startswith(b"\n"):  # <LF>weight<CR><LF>hh<CR><ETX>
                payload, status_text = lines[0], lines[1][1:]
            else:
                return FrameError("not an NCI frame", frame)
        if status_text[:1] == b"S":  # 67XXU OPOS mode: "S" (and maybe a space) before the status bytes
            status_text = status_text[1:].lstrip(b" ")
        status = NCIStatus(status_text)
        if not status.ok:
            return FrameError("bad status bytes", frame)
        if not payload:
            if self._pending:
                return self._command_reply(status, frame)
            if status.state == "stable":
                return FrameError("status frame without a request", frame)
            return WeightFrame(0, status.state, "", frame, status.flags)  # type: ignore[arg-type]
        try:
            text = payload.decode("ascii")
        except UnicodeDecodeError:
            return FrameError("bad weight field", frame)
        if status.state in ("overload", "underload", "error"):
            return WeightFrame(0, status.state, _unit_of(text), frame, status.flags)  # type: ignore[arg-type]
        if bars := _BARS.match(text):
            kind = bars["bars"].replace(" ", "")[0]
            state = {"^": "overload", "_": "underload"}.get(kind, "error")
            flags = status.flags + (("zero_error",) if kind == "-" else ())
            return WeightFrame(0, state, bars["unit"].lower(), frame, flags)  # type: ignore[arg-type]
        try:
            if lb_oz := _LB_OZ.match(text):
                total = abs(to_mg(lb_oz["lb"], "lb")) + to_mg(lb_oz["oz"], "oz")
                mg, unit = (-total if lb_oz["lb"].lstrip().startswith("-") else total), "lb:oz"
            elif m := _NUMBER_UNIT.match(text):
                mg, unit = to_mg(m["num"], m["unit"]), unit_name(m["unit"])
            else:
                return FrameError("bad weight field", frame)
        except ValueError as exc:
            return FrameError(str(exc), frame)
        return WeightFrame(mg, status.state, unit, frame, status.flags)  # type: ignore[arg-type]

    def _command_reply(self, status: NCIStatus, frame: bytes) -> CommandReply:
        command = self._take_pending()
        if status.faults:
            return CommandReply(command, False, ", ".join(status.faults), frame)
        if status.motion:
            return CommandReply(command, False, "scale in motion", frame)
        if command == "zero" and not status.at_zero:
            # "If zeroing criteria are met, the scale is zeroed. In any case, scale status is returned."
            return CommandReply(command, False, "scale did not zero (out of zero range?)", frame)
        return CommandReply(command, True, "done", frame)


def _unit_of(text: str) -> str:
    m = re.search(r"([A-Za-z:]{1,5})\s*$", text)
    return m.group(1).lower() if m else ""


# --------------------------------------------------------------------------- what a documented scale sends

_UNIT_TEXT = {"g": "g", "kg": "kg", "lb": "lb", "oz": "oz"}


def status_bytes(
    *,
    motion: bool = False,
    at_zero: bool = False,
    under: bool = False,
    over: bool = False,
    net: bool | None = None,
) -> bytes:
    """Two status bytes, or three when ``net`` is given (byte 2 then says "byte follows")."""
    b1 = STATUS_BASE | (MOTION if motion else 0) | (AT_ZERO if at_zero else 0)
    b2 = STATUS_BASE | (UNDER_CAPACITY if under else 0) | (OVER_CAPACITY if over else 0)
    if net is None:
        return bytes([b1, b2])
    return bytes([b1, b2 | BYTE_FOLLOWS, STATUS_BASE | (NET_WEIGHT if net else 0)])


def encode_weight(
    mg: int, *, motion: bool = False, unit: str = "g", decimals: int = 2, net: bool | None = None
) -> bytes:
    """``<LF>  1.25lb<CR><LF>00<CR><ETX>`` as the 7821 §6.3 / 7800 p.32 / 67XXU p.64 manuals show it."""
    number = format_number(mg, unit, decimals).rjust(7)
    status = status_bytes(motion=motion, at_zero=mg == 0, net=net)
    return b"\n" + (number + _UNIT_TEXT[unit]).encode("ascii") + b"\r\n" + status + b"\r\x03"


def encode_capacity(*, over: bool, unit: str = "g") -> bytes:
    """All upper bars (``^``) over capacity, all lower bars (``_``) under (NCI 6702 p.14)."""
    field = ("^^^^^^^" if over else "_______") + _UNIT_TEXT[unit]
    return b"\n" + field.encode("ascii") + b"\r\n" + status_bytes(over=over, under=not over) + b"\r\x03"


def encode_status(*, motion: bool = False, at_zero: bool = False) -> bytes:
    return b"\n" + status_bytes(motion=motion, at_zero=at_zero) + b"\r\x03"
