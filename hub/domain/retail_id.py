"""Metrc Retail ID: the per-unit QR code, decoded offline to the package label it stands for.

A Retail ID QR holds a short URL, ``HTTPS://1A4.COM/<short code>``. The short code is the 12 bytes of the
package's batch id followed by the unit's index as an unsigned LEB128 varint. An upper-case scheme
(``HTTPS://``) means the code is base 36 (0-9, A-Z); a lower-case one (``https://``) means URL-safe
base 64. The batch id written as 24 upper-case hex digits is the Metrc package label:
``HTTPS://1A4.COM/5LN8CBN1UB33DON9CHKX`` → ``1A4060300020081000006609``, unit 1 (Metrc's public Retail ID
SDK README, "Original Retail ID functionality": ``RetailIdPair(url).batchId.toHexString()``).

Pure: no network. The label is then looked up like a scanned package tag, with the same checks.
"""

from __future__ import annotations

import base64
import binascii
import re

import msgspec

__all__ = ["RetailId", "RetailIdError", "decode_retail_id"]

_URL = re.compile(r"(?P<scheme>https?)://(?:www\.)?1a4\.com/(?P<code>[A-Za-z0-9_-]{6,64})/?", re.IGNORECASE)
_BASE36 = re.compile(r"[0-9A-Za-z]+")
# Batch ids of package labels start "1A4" (state-systems.md §1.9); the SDK also knows "abc" (its tests).
_KNOWN_PREFIXES = ("1A4", "ABC")


class RetailIdError(ValueError):
    """The QR is a Retail ID URL but its code does not decode to a batch id and unit."""


class RetailId(msgspec.Struct, frozen=True, kw_only=True):
    package_label: str  # 24 upper-case hex digits, e.g. 1A4060300020081000006609
    index: int  # which unit of the package
    short_code: str
    encoding: str  # "base36" or "base64"


def decode_retail_id(url: str) -> RetailId:
    """``HTTPS://1A4.COM/5LN8CBN1UB33DON9CHKX`` → label ``1A4060300020081000006609``, index 1."""
    m = _URL.fullmatch(url.strip())
    if m is None:
        raise RetailIdError("not a Metrc Retail ID URL (https://1a4.com/...)")
    scheme, code = m["scheme"], m["code"]
    order: tuple[str, ...]
    if scheme.isupper():
        order = ("base36",)
    elif scheme.islower():
        # Base 64 by the SDK's convention; a scanner set to lower-case output also lowers a base-36 code,
        # which base 36 reads the same, so try it second (the known prefix guards against a false read).
        order = ("base64", "base36")
    else:
        order = ("base36", "base64")  # mixed case: the SDK tries both
    for encoding in order:
        raw = _decode(code, encoding)
        if raw is None:
            continue
        parsed = _split(raw)
        if parsed is not None and parsed[0].startswith(_KNOWN_PREFIXES):
            return RetailId(package_label=parsed[0], index=parsed[1], short_code=code, encoding=encoding)
    raise RetailIdError(f"Retail ID code {code!r} does not decode to a Metrc package")


def _decode(code: str, encoding: str) -> bytes | None:
    if encoding == "base36":
        if not _BASE36.fullmatch(code):
            return None
        zeros = len(code) - len(code.lstrip("0"))  # leading "0"s are leading zero bytes (SDK)
        rest = code[zeros:]
        if not rest:
            return bytes(zeros)
        n = int(rest, 36)
        return bytes(zeros) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    try:
        return base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    except (binascii.Error, ValueError):
        return None


def _split(raw: bytes) -> tuple[str, int] | None:
    """12-byte batch id (as upper-case hex) and the LEB128 index that must fill the rest exactly."""
    if len(raw) < 13:
        return None
    index, shift = 0, 0
    for i, byte in enumerate(raw[12:], start=1):
        index |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (raw[:12].hex().upper(), index) if 12 + i == len(raw) else None
    return None
