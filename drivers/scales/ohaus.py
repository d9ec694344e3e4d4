"""Ohaus (Scout, Navigator, Ranger, Defender, Courier, PR).

Commands end CR or CR LF: ``IP`` immediate print (stable or not), ``SP`` print when stable, ``CP``
continuous, ``Z`` zero, ``T`` tare; an invalid command is answered ``ES``. Output always ends CR LF:
weight right-justified in 10–12 characters, a space, the unit, a space, ``?`` when unstable, then an
optional legend (``NET``, ``TOTAL``, a time): ``    192.21 g  `` / ``      0.01 g ?``.
Source: Ohaus RS232 interface manual (devices.md §1).

Accumulation: a line whose legend is ``TOTAL`` (``     207.80 g TOTAL``) is the running total of
accumulated weighings that the balance prints on request, not what is on the pan; it is skipped, never
read as a weight (Ohaus Scout / Ranger manuals, accumulation print-out).

Overload: Ohaus does not document a printed overload (devices.md lists it as not confirmed). The display
shows dashes or ``-OL-``, and balances that print it send that field; we read any such field as overload,
and the actor also treats a weight above the configured capacity as overload.
"""

from __future__ import annotations

import re
from typing import ClassVar

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

_WEIGHT = re.compile(
    r"^\s*(?P<num>-?\s*\d*\.?\d+)\s+(?P<unit>[A-Za-z:]{1,5})(?:\s+(?P<stab>\?))?(?:\s+(?P<legend>.*))?\s*$"
)
_OVER = re.compile(r"^\s*(-OL-|OL|O-Ld|-{3,}|\^{3,})(\s+[A-Za-z:]{1,5})?[\s?]*$")
_UNDER = re.compile(r"^\s*(-UL-|UL|U-Ld|_{3,})(\s+[A-Za-z:]{1,5})?[\s?]*$")
_TOTAL = re.compile(r"\bTOTAL\b|\bACCUM", re.IGNORECASE)
_ERR = re.compile(r"^\s*Err\s*(?P<code>[\w.]+)\s*$", re.IGNORECASE)


class OhausCodec(LineCodec):
    name: ClassVar[str] = "ohaus"
    serial_defaults: ClassVar[SerialDefaults] = SerialDefaults(baudrate=9600, bytesize=8, parity="N")
    poll_request: ClassVar[bytes] = b"IP\r\n"
    stream_request: ClassVar[bytes | None] = b"CP\r\n"
    zero_request: ClassVar[bytes] = b"Z\r\n"
    tare_request: ClassVar[bytes] = b"T\r\n"
    acknowledges_commands: ClassVar[bool] = False  # Z and T are silent; only ES on a bad command
    skip_blank_lines: ClassVar[bool] = True  # an empty line between frames is not a bad frame

    def _parse(self, raw: bytes) -> ScaleEvent | None:
        text = ascii_line(raw)
        if text is None:
            return FrameError("not ASCII", raw)
        if text.strip() == "ES":
            if self._pending:
                return CommandReply(self._take_pending(), False, "scale answered ES (invalid command)", raw)
            return FrameError("scale answered ES (invalid command)", raw)
        if text.strip() == "OK":
            return CommandReply(self._take_pending(), True, "done", raw)
        if m := _ERR.match(text):
            return (
                WeightFrame(0, "error", "", raw)
                if not self._pending
                else CommandReply(self._take_pending(), False, f"Err {m['code']}", raw)
            )
        if _OVER.match(text):
            return WeightFrame(0, "overload", "", raw)
        if _UNDER.match(text):
            return WeightFrame(0, "underload", "", raw)
        m = _WEIGHT.match(text)
        if not m:
            if _TOTAL.search(text):
                return None  # an accumulation print-out without a number we know: not the pan either
            return FrameError("not an Ohaus weight line", raw)
        if m["legend"] and _TOTAL.search(m["legend"]):
            return None  # accumulated total, not a weight on the pan
        try:
            mg = to_mg(m["num"], m["unit"])
        except ValueError as exc:
            return FrameError(str(exc), raw)
        return WeightFrame(mg, "motion" if m["stab"] else "stable", m["unit"].lower(), raw)


def encode_weight(mg: int, *, stable: bool, unit: str = "g", decimals: int = 2) -> bytes:
    number = format_number(mg, unit, decimals)
    return f"{number.rjust(10)} {unit} {' ' if stable else '?'}\r\n".encode("ascii")


def encode_overload(unit: str = "g") -> bytes:
    return f"{'-OL-'.rjust(10)} {unit}  \r\n".encode("ascii")
