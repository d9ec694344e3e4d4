"""A simulated scale on a pseudo-terminal, one per protocol, speaking that protocol's real bytes.

Control API (plain methods, call from any trio task):
    set_weight(mg, motion=False)   put something on the pan (gross weight) / let it settle
    set_motion(bool)               the pan is moving
    set_overload(bool) / set_underload(bool)
    write_garbage(b"…")            line noise
    silent = True                  a slow device that never answers
    unplug() / replug()            yank the USB cable, plug it back in (same path)
    zero_count, tare_mg            what the hub's zero/tare commands did
"""

from __future__ import annotations

import trio

from drivers.scales import ad, mt_sics, nci, ohaus
from drivers.sim.pty_device import PtyDevice

STREAM_INTERVAL_S = 0.1


class ScaleSimulator(PtyDevice):
    def __init__(self, protocol: str, *, name: str | None = None, link_dir: str | None = None) -> None:
        if protocol not in ("ad", "mt-sics", "nci", "ohaus"):
            raise ValueError(f"no simulator for scale protocol {protocol!r}")
        super().__init__(name or f"scale-{protocol}", link_dir=link_dir)
        self.protocol = protocol
        self.gross_mg = 0
        self.motion = False
        self.overload = False
        self.underload = False
        self.zero_offset_mg = 0
        self.tare_mg = 0
        self.zero_count = 0
        self.streaming = False
        self._pending = bytearray()

    # ------------------------------------------------------------------ control API

    def set_weight(self, mg: int, *, motion: bool = False) -> None:
        self.gross_mg = mg
        self.motion = motion
        self.overload = self.underload = False

    def set_motion(self, motion: bool) -> None:
        self.motion = motion

    def set_overload(self, overload: bool = True) -> None:
        self.overload = overload

    def set_underload(self, underload: bool = True) -> None:
        self.underload = underload

    @property
    def displayed_mg(self) -> int:
        return self.gross_mg - self.zero_offset_mg - self.tare_mg

    def unplug(self) -> None:
        self.streaming = False  # a power-cycled balance comes back in its default (polled) mode
        self._pending.clear()
        super().unplug()

    # ------------------------------------------------------------------ the device

    def weight_frame(self) -> bytes:
        """The bytes this scale sends for its current state."""
        mg, stable = self.displayed_mg, not self.motion
        if self.protocol == "ad":
            if self.overload or self.underload:
                return ad.encode_overload(below=self.underload)  # below range: pan removed
            return ad.encode_weight(mg, stable=stable)
        if self.protocol == "mt-sics":
            if self.overload:
                return b"S +\r\n"
            if self.underload:
                return b"S -\r\n"
            return mt_sics.encode_weight(mg, stable=stable)
        if self.protocol == "nci":
            if self.overload or self.underload:
                return nci.encode_capacity(over=self.overload)
            return nci.encode_weight(mg, motion=self.motion)
        if self.overload:
            return ohaus.encode_overload()
        return ohaus.encode_weight(mg, stable=stable)

    def on_bytes(self, data: bytes) -> None:
        self._pending += data
        while True:
            i = self._pending.find(b"\r")
            if i < 0:
                if len(self._pending) > 64:
                    self._pending.clear()
                return
            command = bytes(self._pending[:i]).strip(b"\n ").decode("ascii", "replace")
            del self._pending[: i + 1]
            if self._pending[:1] == b"\n":
                del self._pending[:1]
            self._answer(command)

    def _answer(self, command: str) -> None:
        p = self.protocol
        if p == "ad":
            if command in ("Q", "SI", "S"):
                if command == "S" and self.motion:
                    return  # S answers only once stable
                self.write(self.weight_frame())
            elif command == "SIR":
                self.streaming = True
            elif command == "C":
                self.streaming = False
            elif command in ("Z", "R", "T"):
                # AK on: ACK on receipt, then ACK on completion or EC,E11 if it could not settle (§15-2).
                done = self._tare() if command == "T" else self._zero()
                self.write(b"\x06\r\n" + (b"\x06\r\n" if done else b"EC,E11\r\n"))
            else:
                self.write(b"EC,E01\r\n")
        elif p == "mt-sics":
            if command in ("S", "SI"):
                if command == "S" and self.motion:
                    return
                self.write(self.weight_frame())
            elif command == "SIR":
                self.streaming = True
            elif command == "@":
                self.streaming = False
                self.write(b'I4 A "0123456789"\r\n')
            elif command == "Z":
                self.write(b"Z A\r\n" if self._zero() else b"Z I\r\n")
            elif command == "T":
                if self._tare():
                    self.write(mt_sics.encode_weight(self.tare_mg, stable=True).replace(b"S S", b"T S", 1))
                else:
                    self.write(b"T I\r\n")
            else:
                self.write(b"ES\r\n")
        elif p == "nci":
            if command == "W":
                self.write(self.weight_frame())
            elif command in ("S", "Z", "T"):
                # Z and T answer with the status whether or not they could act (NCI 6702 p.14).
                if command == "Z":
                    self._zero()
                elif command == "T":
                    self._tare()
                self.write(nci.encode_status(motion=self.motion, at_zero=self.displayed_mg == 0))
            else:
                self.write(b"\n?\r\x03")  # Brecknell 3700LP p.11
        else:  # ohaus
            if command in ("IP", "P"):
                self.write(self.weight_frame())
            elif command == "SP":
                if not self.motion:
                    self.write(self.weight_frame())
            elif command == "CP":
                self.streaming = True
            elif command == "0P":
                self.streaming = False
            elif command == "Z":
                self._zero()
            elif command == "T":
                self._tare()
            else:
                self.write(b"ES\r\n")

    def _zero(self) -> bool:
        # A legal-for-trade scale refuses to zero while the pan moves (A&D E11, MT-SICS "Z I").
        if self.motion or self.overload:
            return False
        self.zero_offset_mg = self.gross_mg
        self.tare_mg = 0
        self.zero_count += 1
        return True

    def _tare(self) -> bool:
        if self.motion or self.overload:
            return False
        self.tare_mg = self.gross_mg - self.zero_offset_mg
        return True

    async def background(self) -> None:
        while True:
            await trio.sleep(STREAM_INTERVAL_S)
            if self.streaming:
                self.write(self.weight_frame())
