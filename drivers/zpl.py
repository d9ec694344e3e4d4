"""Package exit labels in ZPL II, the ``~HS`` host status answer and the ``~HQES`` error status.

A label is ``^XA … ^XZ``; ``^FO`` field origin, ``^A0N`` scalable font, ``^BCN`` Code 128 with the
interpretation line, ``^PW``/``^LL`` width/length in dots, ``^PQ`` quantity (devices.md §5). Field data
goes through ``^FH`` hex escapes, so a product name with ``^`` or ``~`` cannot inject commands. Sans-I/O.
"""

from __future__ import annotations

import msgspec

from hub.domain.devices import BagLabel, PackageLabel

HOST_STATUS_REQUEST = b"~HS"
# "When a ~HS command is sent the printer will not send a response to the host if the printer is in one
# of these conditions: MEDIA OUT, RIBBON OUT, HEAD OPEN, REWINDER FULL, HEAD OVER-TEMPERATURE" (Zebra
# ZPL Programming Guide, ~HS). ~HQES (host query, error status) still answers then, with error flags.
HOST_ERROR_QUERY = b"~HQES"
SILENT_CONDITIONS = "out of media or ribbon, head open, rewinder full or head too hot"

# ~HQES "ERRORS:" group 1 flags (ZPL Programming Guide, ~HQ error flags table), lowest nibbles first.
MEDIA_OUT = "media out"
ERROR_FLAGS = (
    (0x00000001, MEDIA_OUT),
    (0x00000002, "ribbon out"),
    (0x00000004, "head open"),
    (0x00000008, "cutter fault"),
    (0x00000010, "printhead over temperature"),
    (0x00000020, "motor over temperature"),
    (0x00000040, "bad printhead element"),
    (0x00000080, "printhead detection error"),
)


def _field(text: str) -> str:
    # ^FH_ : "_" followed by two hex digits is a byte. Escape the escape itself and the two prefixes.
    out = []
    for ch in text:
        if ch in "_^~" or ord(ch) < 0x20:
            out.append("".join(f"_{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "^FH_^FD" + "".join(out) + "^FS"


def grams(mg: int) -> str:
    return f"{mg // 1000}.{(mg % 1000) // 10:02d} g"


def render_label(
    label: PackageLabel, *, dpi: int = 203, width_in: float = 4.0, length_in: float = 2.0
) -> bytes:
    dots = dpi / 203
    pw, ll = int(width_in * dpi), int(length_in * dpi)

    def d(n: int) -> int:
        return round(n * dots)

    lines = [
        "^XA",
        "^CI28",  # field data is UTF-8
        f"^PW{pw}",
        f"^LL{ll}",
        f"^FO{d(24)},{d(20)}^A0N,{d(36)},{d(36)}" + _field(label.product[:40]),
        f"^FO{d(24)},{d(64)}^A0N,{d(28)},{d(28)}" + _field(f"Net wt {grams(label.weight_mg)}"),
    ]
    thc = []
    if label.thc_percent_x100 is not None:
        thc.append(f"THC {label.thc_percent_x100 // 100}.{label.thc_percent_x100 % 100:02d}%")
    if label.thc_mg is not None:
        thc.append(f"THC {label.thc_mg:,} mg")
    y = 98
    if thc:
        lines.append(f"^FO{d(24)},{d(y)}^A0N,{d(28)},{d(28)}" + _field("  ".join(thc)))
        y += 34
    for extra in label.extra_lines[:2]:
        lines.append(f"^FO{d(24)},{d(y)}^A0N,{d(22)},{d(22)}" + _field(extra[:60]))
        y += 26
    # Code 128 of the tag, interpretation line printed below it (the tag in text, as the state requires).
    lines.append(f"^FO{d(24)},{d(y + 6)}^BY2^BCN,{d(70)},Y,N,N" + _field(label.tag))
    lines.append(f"^PQ{max(1, label.copies)}")
    lines.append("^XZ")
    return ("\n".join(lines) + "\n").encode("utf-8")


def render_bag_label(label: BagLabel, *, dpi: int = 203, width_in: float = 4.0) -> bytes:
    """An online order's bag: order number large and as Code 128, the customer, then every package tag."""
    dots = dpi / 203

    def d(n: int) -> int:
        return round(n * dots)

    y = 190 + 30 * len(label.tags)
    lines = [
        "^XA",
        "^CI28",
        f"^PW{int(width_in * dpi)}",
        f"^LL{d(y + 20)}",
        f"^FO{d(24)},{d(20)}^A0N,{d(48)},{d(48)}" + _field(f"ORDER {label.order_id}"),
        f"^FO{d(24)},{d(74)}^A0N,{d(28)},{d(28)}" + _field(f"{label.customer[:30]} - {label.fulfilment}"),
        f"^FO{d(24)},{d(108)}^BY2^BCN,{d(50)},N,N,N" + _field(label.order_id),
    ]
    for i, tag in enumerate(label.tags):
        lines.append(f"^FO{d(24)},{d(176 + 30 * i)}^A0N,{d(24)},{d(24)}" + _field(tag))
    lines.append("^XZ")
    return ("\n".join(lines) + "\n").encode("utf-8")


class ZplStatus(msgspec.Struct, frozen=True):
    paper_out: bool
    paused: bool
    head_open: bool
    ribbon_out: bool


def parse_host_status(data: bytes) -> ZplStatus | None:
    """Parse the three ``<STX>…<ETX><CR><LF>`` strings of ``~HS``; None until all are there or if bad.

    String 1: ``aaa,b,c,dddd,…`` with b = paper out, c = pause. String 2: ``mmm,n,o,p,…`` with
    o = head up (open), p = ribbon out.
    """
    strings: list[list[str]] = []
    rest = data
    while len(strings) < 3:
        start = rest.find(b"\x02")
        end = rest.find(b"\x03", start + 1)
        if start < 0 or end < 0:
            return None
        strings.append(rest[start + 1 : end].decode("ascii", "replace").split(","))
        rest = rest[end + 1 :]
    s1, s2 = strings[0], strings[1]
    if len(s1) < 3 or len(s2) < 4:
        return None
    try:
        return ZplStatus(
            paper_out=s1[1].strip() == "1",
            paused=s1[2].strip() == "1",
            head_open=s2[2].strip() == "1",
            ribbon_out=s2[3].strip() == "1",
        )
    except IndexError:
        return None


class ZplErrors(msgspec.Struct, frozen=True):
    errors: tuple[str, ...]  # e.g. ("media out",); empty when the printer reports no error
    flags: int


def parse_error_status(data: bytes) -> ZplErrors | None:
    """Parse the ``~HQES`` answer (``<STX> … PRINTER STATUS … ERRORS: 1 00000000 00000005 … <ETX>``);
    None until the ETX is there or if there is no ERRORS line."""
    start = data.find(b"\x02")
    end = data.find(b"\x03", start + 1)
    if start < 0 or end < 0:
        return None
    text = data[start + 1 : end].decode("ascii", "replace")
    for line in text.splitlines():
        if line.strip().upper().startswith("ERRORS:"):
            fields = line.split(":", 1)[1].split()
            if len(fields) < 3:
                return None
            try:
                flags = int(fields[2], 16)
            except ValueError:
                return None
            if fields[0] == "0":
                return ZplErrors((), 0)
            named = tuple(name for bit, name in ERROR_FLAGS if flags & bit)
            return ZplErrors(named or (f"error {fields[1]} {fields[2]}",), flags)
    return None


def error_status_answer(
    *, media_out: bool = False, ribbon_out: bool = False, head_open: bool = False
) -> bytes:
    """What a Zebra answers to ``~HQES`` (for the simulator), in the ZPL guide's layout."""
    flags = (1 if media_out else 0) | (2 if ribbon_out else 0) | (4 if head_open else 0)
    return (
        "\x02\r\nPRINTER STATUS\r\n"
        f"   ERRORS:         {1 if flags else 0} 00000000 {flags:08X}\r\n"
        "   WARNINGS:       0 00000000 00000000\r\n\x03\r\n"
    ).encode("ascii")


def host_status_answer(*, paper_out: bool = False, paused: bool = False) -> bytes:
    """What a Zebra answers to ``~HS`` (for the simulator)."""
    s1 = f"\x02030,{int(paper_out)},{int(paused)},1245,000,0,0,0,000,0,0,0\x03\r\n"
    s2 = "\x02001,0,0,0,1,2,4,0,00000000,1,000\x03\r\n"
    s3 = "\x021234\x03\r\n"
    return (s1 + s2 + s3).encode("ascii")
