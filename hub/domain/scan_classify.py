"""What a scanned symbol is, from its content alone.

One classifier for both paths: serial/CDC scanners (``actors/scanner.py``) and the browser's
keyboard-wedge input. Routing depends on content, not on which screen had focus — a licence scanned
while the product search is focused must still check the customer in (Flowhub: "If the queue is closed,
scanning an ID will be interpreted as a product scan", devices.md §2).

Pure: no I/O, no trio. The AAMVA *parser* lives in ``hub/domain/aamva.py``; this only recognises the
payload and keeps it whole (LF, RS and CR inside it included).
"""

from __future__ import annotations

import re

import msgspec

from hub.domain.devices import ScanKind, Symbology
from hub.domain.retail_id import RetailIdError, decode_retail_id

# AAMVA DL/ID Card Design Standard, Annex D: compliance indicator "@", data element separator LF,
# record separator RS, segment terminator CR, then the file type "ANSI " (old cards: "AAMVA").
AAMVA_PREFIX = "@\n\x1e\r"
_AAMVA_FILE_TYPES = ("ANSI ", "AAMVA")

# Metrc package tag: 24 characters, "1A4" then upper-case letters and digits (state-systems.md §1.9).
_METRC_TAG = re.compile(r"1A4[0-9A-Z]{21}")
# BioTrack inventory id / barcode: 16 digits.
_BIOTRACK = re.compile(r"\d{16}")
# Metrc Retail ID per-unit QR: https://1a4.com/<short code> (state-systems.md §1.9).
_RETAIL_ID = re.compile(r"(?i)https?://(?:www\.)?1a4\.com/(?P<code>[A-Za-z0-9_-]{6,64})/?")


class ScanClass(msgspec.Struct, frozen=True, kw_only=True):
    kind: ScanKind
    data: str  # normalised: trimmed for barcodes, untouched for AAMVA
    symbology: Symbology
    valid: bool = True
    reason: str = ""
    retail_id_code: str = ""  # the short code of a Retail ID QR, for /retailid/v2/receive/qr/{code}
    package_label: str = ""  # a Retail ID QR decoded offline: the Metrc package it stands for
    printed: str = ""  # UPC-E: the 8 digits on the label (``data`` holds the UPC-A it stands for)


def gs1_check_digit(body: str) -> int:
    """GS1 mod-10 check digit for the digits before it (UPC-A, EAN-13, EAN-8).

    Weights 3 and 1 alternate from the rightmost body digit, which weighs 3.
    """
    total = 0
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


def _retail_code(data: str) -> str | None:
    m = _RETAIL_ID.fullmatch(data)
    return m["code"] if m else None


def classify(raw: str) -> ScanClass:
    """Classify one decoded symbol. Never raises; unknown content is ``kind="unknown"``."""
    if raw.startswith(AAMVA_PREFIX) or _looks_aamva(raw.lstrip(" \ufeff\x00")):
        return _aamva(raw)
    # Wedge input may carry stray whitespace or a trailing CR/LF/TAB from the scanner's suffix.
    data = raw.strip()
    if _METRC_TAG.fullmatch(data):
        return ScanClass(kind="metrc_package", data=data, symbology="code128")
    upper = data.upper()
    if _METRC_TAG.fullmatch(upper):
        # Some scanners are set to lower-case output; the tag itself is upper-case.
        return ScanClass(kind="metrc_package", data=upper, symbology="code128")
    if (code := _retail_code(data)) is not None:
        try:
            rid = decode_retail_id(data)
        except RetailIdError:
            return ScanClass(
                kind="metrc_retail_id",
                data=data,
                symbology="qr",
                retail_id_code=code,
                valid=False,
                reason="This Retail ID QR code does not decode to a Metrc package (damaged or misread): "
                "scan it again or scan the package tag.",
            )
        return ScanClass(
            kind="metrc_retail_id",
            data=data,
            symbology="qr",
            retail_id_code=code,
            package_label=rid.package_label,
        )
    if data.isdigit() and data.isascii():
        if len(data) == 16 and _BIOTRACK.fullmatch(data):
            return ScanClass(kind="biotrack_barcode", data=data, symbology="code128")
        if len(data) == 12:
            return _gs1(data, "upc_a", "UPC-A")
        if len(data) == 13:
            return _gs1(data, "ean_13", "EAN-13")
        if len(data) == 8:
            return _eight_digits(data)
    if data.startswith("1A4") or data.upper().startswith("1A4"):
        return ScanClass(
            kind="metrc_package",
            data=data,
            symbology="code128",
            valid=False,
            reason=f"a Metrc package tag has 24 characters, this one has {len(data)}",
        )
    return ScanClass(
        kind="unknown", data=data, symbology="unknown", valid=False, reason="not a known barcode"
    )


def _gs1(data: str, kind: ScanKind, name: str) -> ScanClass:
    expected = gs1_check_digit(data[:-1])
    if expected != int(data[-1]):
        return ScanClass(
            kind=kind,
            data=data,
            symbology=kind,  # type: ignore[arg-type]
            valid=False,
            reason=f"{name} check digit should be {expected}, the label says {data[-1]}: misread or bad label",
        )
    return ScanClass(kind=kind, data=data, symbology=kind)  # type: ignore[arg-type]


def _looks_aamva(text: str) -> bool:
    """ "@", up to four separators (standard: LF RS CR; captures replace or drop them), "ANSI " or "AAMVA"."""
    return text.startswith("@") and any(text.startswith(_AAMVA_FILE_TYPES, i) for i in range(1, 6))


def upc_e_to_upc_a(code: str) -> str:
    """The UPC-A a UPC-E stands for (GS1 General Specifications, zero-suppression): number system,
    six digits d1..d6, check digit; d6 says where the zeros go. ``04963406`` → ``049000006346``."""
    ns, d, check = code[0], code[1:7], code[7]
    last = d[5]
    if last in "012":
        body = d[0:2] + last + "0000" + d[2:5]
    elif last == "3":
        body = d[0:3] + "00000" + d[3:5]
    elif last == "4":
        body = d[0:4] + "00000" + d[4]
    else:
        body = d[0:5] + "0000" + last
    return ns + body + check


def catalogue_barcode(code: str) -> str:
    """The form a product barcode is stored and looked up in: a UPC-E becomes the UPC-A it stands for, as
    a scan of it does (``_eight_digits``), so a catalogue row holding the printed ``04963406`` is found by
    the scan; any other code is kept as typed (an EAN-8 whose digits are no valid UPC-E stays EAN-8)."""
    code = code.strip()
    if len(code) == 8 and code.isdigit() and code[0] in "01":
        upc_a = upc_e_to_upc_a(code)
        if gs1_check_digit(upc_a[:-1]) == int(upc_a[-1]):
            return upc_a
    return code


def _eight_digits(data: str) -> ScanClass:
    """UPC-E (number system 0 or 1) or EAN-8. UPC-E's check digit belongs to its UPC-A expansion, and the
    product is looked up by that UPC-A (GS1: UPC-E is a compressed UPC-A, not a code of its own)."""
    if data[0] in "01":
        upc_a = upc_e_to_upc_a(data)
        if gs1_check_digit(upc_a[:-1]) == int(upc_a[-1]):
            return ScanClass(kind="upc_e", data=upc_a, symbology="upc_e", printed=data)
        if gs1_check_digit(data[:-1]) == int(data[-1]):
            return ScanClass(kind="ean_8", data=data, symbology="ean_8")
        expected = gs1_check_digit(upc_a[:-1])
        return ScanClass(
            kind="upc_e",
            data=data,
            symbology="upc_e",
            valid=False,
            reason=f"UPC-E check digit should be {expected}, the label says {data[-1]}: misread or bad label",
        )
    return _gs1(data, "ean_8", "EAN-8")


def _aamva(raw: str) -> ScanClass:
    # Keep the payload byte for byte; a trailing suffix added by the scanner beyond the final segment
    # terminator is the framer's business, not ours. The parser (hub/domain/aamva.py) judges the rest and
    # says what is wrong; here only the one loss the content itself proves is refused: no separator at
    # all in a whole licence means a keyboard wedge typed it without its control keys (a serial scanner
    # sends LF, RS and CR as bytes).
    body = raw.strip()
    if len(body) > 40 and not any(c in body for c in "\n\r\x1e") and "<LF>" not in body and "^J" not in body:
        return ScanClass(
            kind="aamva",
            data=raw,
            symbology="pdf417",
            valid=False,
            reason="This is a driver's licence, but its fields arrived run together: the scanner typed it "
            "without its control keys (keyboard-wedge mode). Set the scanner to serial/USB-COM mode, or "
            "check the ID by eye and enter it manually.",
        )
    return ScanClass(kind="aamva", data=raw, symbology="pdf417")


def aamva_declared_length(buf: str) -> int | None:
    """Total payload length an AAMVA header declares (largest subfile offset + length), or None.

    Used by the serial framer to read a licence whole even when the scanner's suffix (CR) also occurs
    inside the payload. Header: 21 characters for version >= 2 (19 for version 1), then one 10-character
    designator per subfile: type (2), offset (4), length (4).
    """
    if len(buf) < 17 or not buf.startswith("@") or buf[4:9] not in _AAMVA_FILE_TYPES:
        return None
    version = buf[15:17]
    if not version.isdigit():
        return None
    head = 21 if int(version) >= 2 else 19
    entries_text = buf[head - 2 : head]
    if not entries_text.isdigit():
        return None
    entries = int(entries_text)
    if entries == 0 or len(buf) < head + 10 * entries:
        return None
    end = 0
    for i in range(entries):
        d = buf[head + 10 * i : head + 10 * (i + 1)]
        offset, length = d[2:6], d[6:10]
        if not (offset.isdigit() and length.isdigit()):
            return None
        end = max(end, int(offset) + int(length))
    return end if end > head else None
