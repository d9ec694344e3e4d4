"""Barcode / ID scanner framing (serial or USB CDC-ACM): bytes in, one symbol per frame out.

A scanner sends each symbol followed by a programmable suffix (CR by default). A licence's PDF417 payload
contains LF, RS and CR itself (devices.md §3), so a plain "split at the suffix" would cut it after four
bytes. A frame that starts with the AAMVA compliance indicator ``@<LF>`` is therefore read to the length
its own header declares; when a card's declared lengths are wrong (they often are), the frame ends when
the line goes quiet for ``frame_gap_s`` (the actor calls ``flush``). Sans-I/O.
"""

from __future__ import annotations

from hub.domain.scan_classify import aamva_declared_length

MAX_SYMBOL_BYTES = 8192  # a PDF417 holds at most ~1.8 kB; anything longer is noise


class ScanFramer:
    def __init__(self, suffix: bytes = b"\r", prefix: bytes = b"", *, max_bytes: int = MAX_SYMBOL_BYTES):
        self.suffix = suffix
        self.prefix = prefix
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self.dropped = 0  # oversize frames thrown away

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        while self._buf:
            body_start = len(self.prefix) if self.prefix and self._buf.startswith(self.prefix) else 0
            lead = len(self._buf) - body_start - len(self._buf[body_start:].lstrip(b" \x00"))
            if lead and self._buf[body_start + lead : body_start + lead + 1] == b"@":
                # A space (or NUL padding) before the licence's "@": not part of it. Without this the
                # CR suffix test below would cut one licence into three frames.
                del self._buf[body_start : body_start + lead]
            if _aamva_start(bytes(self._buf[body_start : body_start + 10])):
                frame = self._take_aamva(body_start)
                if frame is None:
                    break
                frames.append(frame)
                continue
            if not self.suffix:
                break  # no suffix programmed: frames end on the idle gap
            i = self._buf.find(self.suffix)
            if i < 0:
                break
            frames.append(bytes(self._buf[body_start:i]))
            del self._buf[: i + len(self.suffix)]
        if len(self._buf) > self.max_bytes:
            self._buf.clear()
            self.dropped += 1
        return [f for f in frames if f]

    def _take_aamva(self, body_start: int) -> bytes | None:
        text = self._buf[body_start:].decode("latin-1")
        declared = aamva_declared_length(text)
        if declared is None or len(text) < declared:
            return None  # wait for more (or for the idle gap)
        if text[declared - 1] != "\r":
            return None  # declared lengths are wrong on this card: the idle gap ends the frame
        frame = bytes(self._buf[body_start : body_start + declared])
        del self._buf[: body_start + declared]
        if self.suffix and self._buf.startswith(self.suffix):
            del self._buf[: len(self.suffix)]  # the suffix may also arrive later: flush() drops it alone
        return frame

    def flush(self) -> list[bytes]:
        """The line went quiet: whatever is buffered is one symbol (minus a trailing suffix)."""
        if not self._buf:
            return []
        frame = bytes(self._buf)
        self._buf.clear()
        if self.prefix and frame.startswith(self.prefix):
            frame = frame[len(self.prefix) :]
        if self.suffix and frame.endswith(self.suffix):
            frame = frame[: -len(self.suffix)]
        if frame and frame.strip(self.suffix or b"\r\n") == b"":
            return []  # a lone suffix left over after a declared-length AAMVA frame
        return [frame] if frame else []


def _aamva_start(head: bytes) -> bool:
    """Does this look like (the start of) a licence: "@" then LF, or "@", up to four separators and the
    file type ("ANSI " / "AAMVA"), or a lone "@" that may still become one?"""
    if head[:2] == b"@\n" or head == b"@":
        return True
    return head[:1] == b"@" and any(head.find(t, 1, 10) in range(1, 6) for t in (b"ANSI ", b"AAMVA"))


def decode_symbol(frame: bytes) -> str:
    """Scanner bytes to text, losslessly (AAMVA is ASCII; latin-1 keeps any stray high byte visible)."""
    return frame.decode("latin-1")
