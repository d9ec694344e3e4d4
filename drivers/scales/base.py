"""What every scale codec shares: frames, units, line splitting.

A codec is sans-I/O: ``feed(bytes)`` returns the events decoded so far (weights, command replies and
protocol errors), and the request bytes for poll / zero / tare are plain attributes. The scale actor
does the I/O; tests drive codecs with bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import ClassVar, Literal

import msgspec

from hub.domain.devices import ScaleState

# Milligrams per unit. Avoirdupois pound = 453.59237 g exactly (international yard and pound, 1959);
# ounce = lb / 16; carat = 200 mg; troy ounce = 31.1034768 g; pennyweight = troy oz / 20;
# tola = 11.6638038 g (A&D FX-i manual, unit table: "t" tola), not the troy ounce.
MG_PER_UNIT: dict[str, Decimal] = {
    "mg": Decimal(1),
    "g": Decimal(1000),
    "kg": Decimal(1_000_000),
    "lb": Decimal("453592.37"),
    "oz": Decimal("28349.523125"),
    "ct": Decimal(200),
    "ozt": Decimal("31103.4768"),
    "dwt": Decimal("1555.17384"),
    "tola": Decimal("11663.8038"),
}
# "t" is not here: A&D prints the tola as "t" (the codec maps it), MT-SICS would mean the tonne. An
# unknown unit is refused rather than guessed, so a misread unit never prices a sale.
_UNIT_ALIASES = {"gm": "g", "gr": "g", "lbs": "lb", "kgs": "kg", "oz t": "ozt", "dw": "dwt"}

MAX_FRAME_BYTES = 128  # no scale frame is longer; a longer run without a terminator is garbage


class SerialDefaults(msgspec.Struct, frozen=True):
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1


class WeightFrame(msgspec.Struct, frozen=True):
    """A decoded weight. ``weight_mg`` is 0 when the scale sent no number (overload, error).

    ``flags``: what else the scale said about this reading, e.g. ``"at_zero"``, ``"net"``,
    ``"high_range"``, ``"zero_error"`` (NCI status bytes), ``"below_range"`` (A&D).
    """

    weight_mg: int
    state: ScaleState
    unit: str = ""
    raw: bytes = b""
    flags: tuple[str, ...] = ()


class CommandReply(msgspec.Struct, frozen=True):
    """The scale's answer to zero/tare (``ok`` False: refused, e.g. not stable or out of range)."""

    command: Literal["zero", "tare", "other"]
    ok: bool
    detail: str = ""
    raw: bytes = b""
    # False for an acknowledgement of receipt that promises a second answer on completion (A&D "AK"
    # setting: ACK on receipt, ACK again when zero/tare is done, or EC,E11; FX-i manual §15-2).
    final: bool = True


class FrameError(msgspec.Struct, frozen=True):
    """Bytes that do not parse. Counted by the actor, never raised."""

    reason: str
    raw: bytes = b""


ScaleEvent = WeightFrame | CommandReply | FrameError


def to_mg(number: str, unit: str, aliases: dict[str, str] | None = None) -> int:
    """``"+0012.345"``, ``"g"`` → 12345. Raises ValueError on a bad number or unknown unit.

    ``aliases`` maps a protocol's own unit names first (A&D ``t`` = tola)."""
    u = unit.strip()
    if aliases and u in aliases:
        u = aliases[u]
    u = u.lower()
    u = _UNIT_ALIASES.get(u, u)
    if u not in MG_PER_UNIT:
        raise ValueError(f"unknown unit {unit!r}")
    text = number.replace(" ", "")
    if not text or text in "+-":
        raise ValueError(f"no number in {number!r}")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {number!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a number: {number!r}")
    return int((value * MG_PER_UNIT[u]).to_integral_value(rounding=ROUND_HALF_EVEN))


def unit_name(unit: str) -> str:
    """The unit as we name it: ``"GM"`` → ``"g"``, ``"LB"`` → ``"lb"`` (unknown names lower-cased)."""
    u = unit.strip().lower()
    return _UNIT_ALIASES.get(u, u)


def format_number(mg: int, unit: str, decimals: int) -> str:
    """Inverse of ``to_mg`` for simulators: 12345 mg in g with 2 decimals → ``"12.35"``."""
    value = (Decimal(mg) / MG_PER_UNIT[unit]).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_EVEN)
    return f"{value:.{decimals}f}"


class LineSplitter:
    """Splits a byte stream at a terminator, dropping (and reporting) runs that never terminate."""

    def __init__(self, terminator: bytes, *, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.terminator = terminator
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> tuple[list[bytes], list[FrameError]]:
        self._buf += data
        lines: list[bytes] = []
        errors: list[FrameError] = []
        while True:
            i = self._buf.find(self.terminator)
            if i < 0:
                break
            line = bytes(self._buf[:i])
            del self._buf[: i + len(self.terminator)]
            if len(line) > self.max_frame:
                errors.append(FrameError("frame too long", line[-self.max_frame :]))
            else:
                lines.append(line)
        if len(self._buf) > self.max_frame:
            errors.append(FrameError("no terminator", bytes(self._buf[-self.max_frame :])))
            self._buf.clear()
        return lines, errors

    def clear(self) -> None:
        self._buf.clear()


class ScaleCodec(ABC):
    """Base of the four protocols. Subclasses set the class attributes and implement ``feed``.

    ``note_sent("zero" | "tare")`` tells the codec a command went out, so an anonymous acknowledgement
    (A&D ``<ACK>``, NCI status frame, Ohaus ``ES``) can be attributed to it.
    """

    name: ClassVar[str]
    default_mode: ClassVar[Literal["poll", "stream"]] = "poll"
    serial_defaults: ClassVar[SerialDefaults] = SerialDefaults()
    poll_request: ClassVar[bytes]  # ask for the current weight, stable or not
    stream_request: ClassVar[bytes | None] = None  # start continuous output, if the scale can
    zero_request: ClassVar[bytes]
    tare_request: ClassVar[bytes]
    acknowledges_commands: ClassVar[bool] = True  # does zero/tare get an answer the codec can read?

    def __init__(self) -> None:
        self._pending: deque[Literal["zero", "tare"]] = deque(maxlen=4)

    def note_sent(self, command: Literal["zero", "tare"]) -> None:
        self._pending.append(command)

    def _take_pending(self) -> Literal["zero", "tare", "other"]:
        return self._pending.popleft() if self._pending else "other"

    @abstractmethod
    def feed(self, data: bytes) -> list[ScaleEvent]:
        """Bytes from the port in, complete frames (weights, command replies, errors) out."""

    def reset(self) -> None:
        """Forget half-received bytes and pending commands (after a reconnect)."""
        self._pending.clear()


class LineCodec(ScaleCodec):
    """A protocol whose frames are lines ending in CR LF (A&D, MT-SICS, Ohaus): split, then ``_parse``."""

    line_end: ClassVar[bytes] = b"\r\n"
    skip_blank_lines: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self._lines = LineSplitter(self.line_end)

    def reset(self) -> None:
        super().reset()
        self._lines.clear()

    def feed(self, data: bytes) -> list[ScaleEvent]:
        lines, errors = self._lines.feed(data)
        events: list[ScaleEvent] = list(errors)
        for raw in lines:
            if self.skip_blank_lines and not raw.strip():
                continue
            event = self._parse(raw)
            if event is not None:
                events.append(event)
        return events

    @abstractmethod
    def _parse(self, raw: bytes) -> ScaleEvent | None:
        """One line (without its terminator) as a weight, a command reply or a frame error; None for a
        well-formed line that is not about the pan (an Ohaus accumulated TOTAL)."""


def ascii_line(raw: bytes) -> str | None:
    """Decode a frame as printable ASCII, or None when it holds anything else (line noise)."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    if any(not (c.isprintable() or c == "\t") for c in text):
        return None
    return text
