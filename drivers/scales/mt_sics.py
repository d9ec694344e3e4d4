"""Mettler Toledo MT-SICS level 0/1.

Commands end CR LF: ``S`` stable weight, ``SI`` immediate weight, ``SIR`` immediate and repeat, ``Z``
zero, ``T`` tare. Replies: ``S S     100.00 g`` (stable), ``S D     100.02 g`` (dynamic),
``S I`` (not executable now), ``S +`` / ``S -`` (over / under range); ``Z A`` zeroed, ``Z I``, ``Z +``,
``Z -``; ``T S <tare> g`` tared, ``T I``, ``T +``, ``T -``; ``ES`` / ``ET`` / ``EL`` syntax,
transmission and logical errors. Source: MT-SICS reference (devices.md §1), Atlantis-Software/mt-sics.
"""

from __future__ import annotations

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

_GENERIC_ERRORS = {"ES": "syntax error", "ET": "transmission error", "EL": "logical error"}
_RANGE = {"+": "upper limit exceeded", "-": "lower limit exceeded", "I": "not executable now"}


class MTSICSCodec(LineCodec):
    name: ClassVar[str] = "mt-sics"
    serial_defaults: ClassVar[SerialDefaults] = SerialDefaults(baudrate=9600, bytesize=8, parity="N")
    # SI (not S): S would block until stable, and the register must show motion while it settles.
    poll_request: ClassVar[bytes] = b"SI\r\n"
    stream_request: ClassVar[bytes | None] = b"SIR\r\n"
    zero_request: ClassVar[bytes] = b"Z\r\n"
    tare_request: ClassVar[bytes] = b"T\r\n"

    def _parse(self, raw: bytes) -> ScaleEvent:
        text = ascii_line(raw)
        if text is None:
            return FrameError("not ASCII", raw)
        parts = text.split()
        if not parts:
            return FrameError("empty line", raw)
        cmd = parts[0]
        if cmd in _GENERIC_ERRORS and len(parts) == 1:
            if self._pending:
                return CommandReply(self._take_pending(), False, _GENERIC_ERRORS[cmd], raw)
            return FrameError(f"scale answered {cmd} ({_GENERIC_ERRORS[cmd]})", raw)
        if len(parts) < 2:
            return FrameError("not an MT-SICS reply", raw)
        status = parts[1]
        if cmd in ("S", "SI", "SIR"):
            if status in ("S", "D") and len(parts) == 4:
                try:
                    mg = to_mg(parts[2], parts[3])
                except ValueError as exc:
                    return FrameError(str(exc), raw)
                return WeightFrame(mg, "stable" if status == "S" else "motion", parts[3], raw)
            if status == "+":
                return WeightFrame(0, "overload", "", raw)
            if status == "-":
                return WeightFrame(0, "underload", "", raw)
            if status == "I":
                return WeightFrame(0, "error", "", raw)
            return FrameError("bad weight reply", raw)
        if cmd in ("Z", "ZI"):
            return self._reply("zero", status, ok_status=("A", "S", "D"), raw=raw)
        if cmd in ("T", "TI"):
            return self._reply("tare", status, ok_status=("S", "D"), raw=raw)
        return FrameError(f"unexpected reply {cmd!r}", raw)

    def _reply(self, command: str, status: str, *, ok_status: tuple[str, ...], raw: bytes) -> ScaleEvent:
        if self._pending and self._pending[0] == command:
            self._pending.popleft()
        ok = status in ok_status
        detail = "done" if ok else _RANGE.get(status, f"status {status}")
        return CommandReply("zero" if command == "zero" else "tare", ok, detail, raw)


def encode_weight(mg: int, *, stable: bool, unit: str = "g", decimals: int = 2) -> bytes:
    number = format_number(mg, unit, decimals)
    return f"S {'S' if stable else 'D'} {number.rjust(10)} {unit}\r\n".encode("ascii")
