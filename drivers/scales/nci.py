"""NCI / Brecknell / Avery Weigh-Tronix (NCI 3825/3835, SCP-01, SCP-12) at 9600 7E1.

``W<CR>`` → ``<LF>[-]xxxx.xxUU<CR>hh<ETX>``: weight with a 2-character unit, then two status bytes.
``S<CR>`` → ``<LF>hh<CR><ETX>``. ``Z<CR>`` zero (answered with a status frame). Unknown command →
``<LF>?<CR>`` (no ETX). Status byte 1: bit0 motion, bit1 at zero, bit2 RAM error, bit3 EEPROM error;
byte 2: bit0 under capacity, bit1 over capacity, bit2 ROM error, bit3 calibration error; bits 4 and 5
are always set, so a stable scale sends ``00`` (30h 30h). Source: chris-rudmin/serial-nci-scale.
"""

from __future__ import annotations

from typing import ClassVar

from drivers.scales.base import (
    MAX_FRAME_BYTES,
    CommandReply,
    FrameError,
    ScaleCodec,
    ScaleEvent,
    SerialDefaults,
    WeightFrame,
    ascii_line,
    format_number,
    to_mg,
)

LF, CR, ETX = 0x0A, 0x0D, 0x03

MOTION, AT_ZERO, RAM_ERROR, EEPROM_ERROR = 0x01, 0x02, 0x04, 0x08
UNDER_CAPACITY, OVER_CAPACITY, ROM_ERROR, CALIBRATION_ERROR = 0x01, 0x02, 0x04, 0x08
STATUS_BASE = 0x30  # bits 4 and 5 always 1


class NCIStatus:
    def __init__(self, b1: int, b2: int) -> None:
        self.motion = bool(b1 & MOTION)
        self.at_zero = bool(b1 & AT_ZERO)
        self.under = bool(b2 & UNDER_CAPACITY)
        self.over = bool(b2 & OVER_CAPACITY)
        faults = [
            name
            for bit, byte, name in (
                (RAM_ERROR, b1, "RAM error"),
                (EEPROM_ERROR, b1, "EEPROM error"),
                (ROM_ERROR, b2, "ROM error"),
                (CALIBRATION_ERROR, b2, "calibration error"),
            )
            if byte & bit
        ]
        self.faults = faults

    @property
    def state(self) -> str:
        if self.faults:
            return "error"
        if self.over:
            return "overload"
        if self.under:
            return "underload"
        return "motion" if self.motion else "stable"


class NCICodec(ScaleCodec):
    name: ClassVar[str] = "nci"
    serial_defaults: ClassVar[SerialDefaults] = SerialDefaults(baudrate=9600, bytesize=7, parity="E")
    poll_request: ClassVar[bytes] = b"W\r"
    stream_request: ClassVar[bytes | None] = None
    zero_request: ClassVar[bytes] = b"Z\r"
    # SCP-12 tare; scales without it answer <LF>?<CR>, reported as a refused command.
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
                if junk.strip(b"\r\x03"):
                    events.append(FrameError("bytes outside a frame", junk))
            if self._buf[1:3] == b"?\r":
                del self._buf[:3]
                events.append(CommandReply(self._take_pending(), False, "scale does not know this command"))
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

    def _parse(self, frame: bytes) -> ScaleEvent:
        body = frame[1:-1]  # between LF and ETX
        if body.endswith(b"\r"):  # status frame <LF>hh<CR><ETX>: the answer to S or Z
            payload, status_bytes = b"", body[:-1]
        else:  # weight frame <LF>weight<CR>hh<ETX>
            cr = body.rfind(b"\r")
            if cr < 0:
                return FrameError("no CR in frame", frame)
            payload, status_bytes = body[:cr], body[cr + 1 :]
        if len(status_bytes) < 2 or any(b & 0xF0 != 0x30 for b in status_bytes):
            return FrameError("bad status bytes", frame)
        status = NCIStatus(status_bytes[0], status_bytes[1])
        if not payload:
            if self._pending:
                command = self._take_pending()
                ok = not status.faults and not status.motion
                detail = "done" if ok else ("scale in motion" if status.motion else ", ".join(status.faults))
                return CommandReply(command, ok, detail, frame)
            if status.state == "stable":
                return FrameError("status frame without a request", frame)
            return WeightFrame(0, status.state, "", frame)  # type: ignore[arg-type]
        if status.state in ("overload", "underload", "error"):
            return WeightFrame(0, status.state, "", frame)  # type: ignore[arg-type]
        text = ascii_line(payload)
        if text is None or len(text) < 3:
            return FrameError("bad weight field", frame)
        number, unit = text[:-2], text[-2:]
        try:
            mg = to_mg(number, unit)
        except ValueError as exc:
            return FrameError(str(exc), frame)
        return WeightFrame(mg, status.state, unit.strip().lower(), frame)  # type: ignore[arg-type]


def status_bytes(
    *, motion: bool = False, at_zero: bool = False, under: bool = False, over: bool = False
) -> bytes:
    b1 = STATUS_BASE | (MOTION if motion else 0) | (AT_ZERO if at_zero else 0)
    b2 = STATUS_BASE | (UNDER_CAPACITY if under else 0) | (OVER_CAPACITY if over else 0)
    return bytes([b1, b2])


def encode_weight(mg: int, *, motion: bool = False, unit: str = "g", decimals: int = 2) -> bytes:
    number = format_number(mg, unit, decimals).rjust(7)
    field = number + {"g": "GM", "kg": "KG", "lb": "LB", "oz": "OZ"}[unit]
    return b"\n" + field.encode("ascii") + b"\r" + status_bytes(motion=motion, at_zero=mg == 0) + b"\x03"


def encode_capacity(*, over: bool) -> bytes:
    field = ("^^^^^^^" if over else "_______") + "GM"
    return b"\n" + field.encode("ascii") + b"\r" + status_bytes(over=over, under=not over) + b"\x03"


def encode_status(*, motion: bool = False) -> bytes:
    return b"\n" + status_bytes(motion=motion) + b"\r\x03"
