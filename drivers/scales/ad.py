"""A&D (FX-i, FZ-i, GX, EK) standard format.

Frame: ``HH,±DDDDDDDD UUU<CR><LF>`` — a 2-letter header, a comma, a signed 9-character number, a
3-character right-aligned unit: ``ST,+00012.34  g``. Headers: ``ST`` stable, ``US`` unstable, ``OL``
overload, ``QT`` count (not a weight), ``WT`` stable weight, ``EC,Exx`` error. A command is
acknowledged by ``<ACK>`` (06h) when the "AK" setting is on; a command that takes time (``Z``, ``T``,
calibration) is acknowledged twice, on receipt and on completion, or answered ``EC,E11`` when the
balance could not settle (FX-i manual §15-2 "Acknowledge code and error codes"). Commands: ``Q``/``SI``
immediate, ``S`` stable only, ``SIR`` continuous, ``C`` cancel, ``Z`` re-zero, ``T`` tare (each
ending CR LF). Overload is ``OL,+9999999E+19``; below range (pan removed) ``OL,-9999999E+19`` (FX-i
manual §15 data format: the sign tells which). Units are the balance's own symbols: ``t`` is the tola
(11.6638038 g), not the troy ounce (``ozt``); ``mom`` momme, ``GN`` grain, ``TL`` tael.
Sources: A&D FX-i manual (devices.md §1), OpenTrickler ANDFx120.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from drivers.scales.base import (
    CommandReply,
    FrameError,
    LineCodec,
    ScaleEvent,
    SerialDefaults,
    WeightFrame,
    ascii_line,
    format_number,
    to_mg,
)

ACK = b"\x06"
# A&D unit symbols that differ from ours (FX-i manual, unit table).
AD_UNITS = {"t": "tola", "ozt": "ozt", "dwt": "dwt", "ct": "ct", "oz": "oz", "g": "g", "kg": "kg", "mg": "mg"}
# The data field is 9 characters then a 3-character unit; balances with more digits widen the number,
# so split on the number's end rather than at a fixed column.
# CSV format (FX-i manual "CSV format", 5if type 5) puts a comma between the data and the unit.
_NUMBER_UNIT = re.compile(r"^(?P<num>[+-]?[0-9.]+)\s*,?\s*(?P<unit>[A-Za-z]{1,3})\s*$")

# A&D error codes sent as ``EC,Exx``.
ERROR_CODES = {
    "E00": "communication error",
    "E01": "undefined command",
    "E02": "not ready",
    "E03": "timeout",
    "E04": "excess characters",
    "E06": "format error",
    "E07": "parameter setting error",
    "E11": "stability error (could not settle)",
    "E20": "calibration weight error (too heavy)",
    "E21": "calibration weight error (too light)",
}


class ADCodec(LineCodec):
    name: ClassVar[str] = "ad"
    # Stream: the balance pushes every display update (``SIR``); the hub never waits on a poll.
    default_mode: ClassVar[Literal["poll", "stream"]] = "stream"
    serial_defaults: ClassVar[SerialDefaults] = SerialDefaults(baudrate=2400, bytesize=7, parity="E")
    poll_request: ClassVar[bytes] = b"Q\r\n"
    stream_request: ClassVar[bytes | None] = b"SIR\r\n"
    zero_request: ClassVar[bytes] = b"Z\r\n"
    tare_request: ClassVar[bytes] = b"T\r\n"

    def __init__(self) -> None:
        super().__init__()
        self._received = False  # the oldest pending command has had its first (receipt) ACK

    def reset(self) -> None:
        super().reset()
        self._received = False

    def _take_pending(self) -> Literal["zero", "tare", "other"]:
        self._received = False
        return super()._take_pending()

    def _parse(self, raw: bytes) -> ScaleEvent:
        if raw == ACK:
            if self._pending and not self._received:
                # First ACK: command received; the balance sends a second ACK (or EC,E11) when done.
                self._received = True
                return CommandReply(self._pending[0], True, "received", raw, final=False)
            return CommandReply(self._take_pending(), True, "done", raw)
        text = ascii_line(raw)
        if text is None or len(text) < 3 or text[2] != ",":
            return FrameError("not an A&D frame", raw)
        header, body = text[:2], text[3:]
        if header == "EC":
            code = body.strip()
            detail = f"{code} {ERROR_CODES.get(code, 'error')}"
            if self._pending:
                return CommandReply(self._take_pending(), False, detail, raw)
            return WeightFrame(0, "error", "", raw)
        if header == "OL":
            if body.lstrip().startswith("-"):  # OL,-9999999E+19: below range (pan removed), not overload
                return WeightFrame(0, "underload", "", raw, ("below_range",))
            return WeightFrame(0, "overload", "", raw)
        if header not in ("ST", "US", "WT"):
            # QT (counting mode) and anything else is not a weight the hub can sell by.
            return FrameError(f"unsupported A&D header {header!r}", raw)
        m = _NUMBER_UNIT.match(body)
        if not m:
            return FrameError("bad A&D weight field", raw)
        number, unit = m["num"], m["unit"]
        try:
            mg = to_mg(number, unit, AD_UNITS)
        except ValueError as exc:
            return FrameError(str(exc), raw)
        return WeightFrame(mg, "motion" if header == "US" else "stable", AD_UNITS.get(unit, unit), raw)


def encode_weight(mg: int, *, stable: bool, unit: str = "g", decimals: int = 3) -> bytes:
    """What an A&D balance sends for ``mg`` (used by the simulator and tests)."""
    number = format_number(abs(mg), unit, decimals)
    sign = "-" if mg < 0 else "+"
    field = sign + number.rjust(8, "0")
    return f"{'ST' if stable else 'US'},{field}{unit.rjust(3)}\r\n".encode("ascii")


def encode_overload(*, below: bool = False) -> bytes:
    return b"OL,-9999999E+19\r\n" if below else b"OL,+9999999E+19\r\n"
