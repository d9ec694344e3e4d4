"""AAMVA PDF417 driver's licence / ID card payloads, parsed into the few fields a store needs.

Format (AAMVA DL/ID Card Design Standard 2020, Annex D, as summarised in reference/devices.md §3 from
``benhovinga/aamva_barcode_library``)::

    @ LF RS CR  "ANSI " | "AAMVA"  IIN(6)  version(2)  [jurisdiction version(2) if version >= 2]  entries(2)
    entries x designator: type(2) offset(4) length(4)          e.g. DL00410278
    subfile: type(2) then elements "DAQ...", "DBB..." separated by LF, terminated by CR

Two ways the payload reaches us:

* **Serial / USB-CDC scanner** (``parse_licence(bytes)``): raw bytes, every control character intact.
  Designator offsets and lengths are checked; real cards often have offsets that are off by a few
  characters, so we fall back to finding the subfile type in order and say so in ``warnings``.
* **Keyboard-wedge scanner** (``parse_licence(str)`` from a browser input): the scanner "types" the
  barcode, so control characters depend on its key mapping (devices.md §2). What is recoverable:

  - LF and CR typed as Enter (``\\n`` or ``\\r``): fully recoverable. Every separator becomes a line
    break; a subfile starts on a line that begins with the next designator type (``ZV...``), which
    never begins a DL/ID element (those start with ``D``).
  - RS dropped or typed as a line break: recoverable (it only appears in the header).
  - Separators shown as visible markers (``<LF>``, ``<CR>``, ``<RS>``, ``[LF]``, ``^J``, ``^M``, ``^^``,
    ``Control J``/``Control M``): recoverable, they are turned back into control characters.
  - Separators dropped entirely (``DAQT64235789DCSSAMPLEDDEN...``): **not recoverable** — a value can
    contain what looks like an element ID, so we refuse and ask for serial mode instead of guessing.
  - Input cut at the first Enter (the register submitted the field on CR): the header alone arrives;
    we report the barcode as cut short so the UI can tell the budtender to rescan.

Every failure is an ``AamvaError`` whose message a budtender can act on; nothing else escapes.
Privacy: the result carries only what check-in needs (no street address, height, eye colour); the
caller stores even less (reference/compliance-and-market.md §2: "filter data to only the fields you need").
"""

from __future__ import annotations

import re
from datetime import date

import msgspec

__all__ = ["AamvaError", "DriverLicence", "parse_licence"]

LF, RS, CR = "\n", "\x1e", "\r"
_FILE_TYPES = ("ANSI ", "AAMVA")
_DESIGNATOR = re.compile(r"[A-Z][A-Z0-9]\d{4}\d{4}")
_ELEMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_DL_ELEMENT = re.compile(r"D[A-Z]{2}")  # every element of the DL/ID subfile starts with "D"
_C1_CONTROLS = re.compile("[\x80-\x9f]")
# Between "@" and the file type the standard puts LF RS CR; captures show those replaced, doubled or
# dropped ("@\n\nANSI", "@a\nANSI", "@\n6MANSI", "@\nANSI": IdParser's samples). Four at most.
_MAX_HEADER_SEPARATORS = 4
# AIM symbology identifier some scanners prepend (]L0..]L9 = PDF417).
_AIM_PREFIX = re.compile(r"^\]L\d")
# Visible stand-ins that wedge software or scanner "keyboard macros" put in place of control characters.
_MARKERS = (
    ("Control J", LF),
    ("Control M", CR),
    ("<LF>", LF),
    ("<CR>", CR),
    ("<RS>", RS),
    ("[LF]", LF),
    ("[CR]", CR),
    ("[RS]", RS),
    ("^J", LF),
    ("^M", CR),
    ("^^", RS),
)
_RUN_TOGETHER = ("DCS", "DAC", "DBB", "DBA", "DAJ", "DAQ")
# which of them a value holds (overlapping, as ``code in value`` finds each), scanned only when one is there
_RUN_TOGETHER_ANY = re.compile("|".join(_RUN_TOGETHER))
_RUN_TOGETHER_AT = re.compile("(?=(" + "|".join(_RUN_TOGETHER) + "))")
_CANADIAN_JURISDICTIONS = frozenset(
    {"AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"}
)


class AamvaError(ValueError):
    """The scan is not a usable licence. ``code`` is for the UI, ``str(err)`` is for the budtender."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DriverLicence(msgspec.Struct, frozen=True, kw_only=True):
    """What check-in needs from a licence or state ID. Dates are calendar dates, no time zone."""

    document_type: str  # "DL" or "ID" (subfile type)
    document_number: str  # DAQ; store only as a keyed hash (DESIGN.md, personal data)
    family_name: str
    given_name: str
    middle_name: str = ""
    date_of_birth: date
    expiry: date
    issue_date: date | None = None
    jurisdiction: str  # DAJ: the state/province of the holder's address (used for residency)
    postal_code: str = ""
    country: str = "USA"  # DCG, or inferred from DAJ on old cards
    sex: str | None = None  # "M", "F", "X" (DBC 1/2/9), None if absent
    real_id: bool | None = None  # DDA "F" = fully compliant
    iin: str  # issuer identification number from the header
    aamva_version: int
    jurisdiction_version: int | None = None
    warnings: tuple[str, ...] = ()  # what we had to repair; show to staff, not a refusal


def parse_licence(payload: bytes | str) -> DriverLicence:
    """Parse a PDF417 licence payload: ``bytes`` from a serial scanner, ``str`` from a wedge scanner."""
    try:
        return _parse(payload)
    except AamvaError:
        raise
    except (ValueError, IndexError, UnicodeError) as exc:  # pragma: no cover - defence in depth
        raise AamvaError(
            "unreadable", "The licence barcode could not be read. Please scan it again."
        ) from exc


# --------------------------------------------------------------------------------------------- parsing


def _normalise(payload: bytes | str) -> tuple[str, bool]:
    """Text and whether it looks like a keyboard-wedge capture (control characters altered)."""
    if isinstance(payload, bytes | bytearray | memoryview):
        # Serial scanners send 8-bit bytes; latin-1 never fails and keeps every byte as one character.
        # A capture saved as UTF-8 (accented names, IdParser's CT sample) is read as UTF-8.
        raw = bytes(payload)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        wedge = False
    elif isinstance(payload, str):
        text = payload
        wedge = True
    else:
        raise AamvaError("not-aamva", "This scan is not a driver's licence or ID card.")
    text = text.strip("\x00")  # HID "COM emulation" pads blocks with NUL (devices.md §2)
    # A byte-order mark from a saved capture, and C1 control characters (U+0080-U+009F) that some
    # scanners put around every field (c0shea/IdParser "CT Undefined Characters"): neither is data.
    text = _C1_CONTROLS.sub("", text.replace("\ufeff", ""))
    text = _AIM_PREFIX.sub("", text.lstrip())
    for marker, char in _MARKERS:
        if marker in text:
            text = text.replace(marker, char)
            wedge = True
    if wedge:
        # Enter may arrive as CR, LF or CRLF; RS cannot be typed on most layouts. All become one LF.
        text = text.replace("\r\n", LF).replace(CR, LF).replace(RS, LF)
    return text, wedge


def _parse(payload: bytes | str) -> DriverLicence:
    text, wedge = _normalise(payload)
    typed = wedge  # typed into a page (keyboard wedge): only then may a refusal blame the scanner's mode
    if not text.strip():
        raise AamvaError("empty", "Nothing was scanned. Scan the barcode on the back of the licence.")
    at = text.find("@")
    if at < 0:
        raise AamvaError(
            "not-aamva",
            "This barcode is not a driver's licence or ID card. Scan the large barcode on the back of the card.",
        )
    text = text[at:]
    warnings: list[str] = []

    # --- header: "@" then separators (LF RS CR in the standard), then the file type.
    pos = _file_type_at(text)
    if pos is None:
        rest = text[1 : 1 + _MAX_HEADER_SEPARATORS + 5]
        if len(text) <= 1 + _MAX_HEADER_SEPARATORS and not rest.strip(LF + RS + CR):
            if typed:
                # Only "@" and separators arrived: typed into the page, the first Enter ended the input.
                raise AamvaError(
                    "truncated",
                    "Only the first characters of the licence barcode arrived: the scanner types into the "
                    "page (keyboard mode) and the Enter inside the barcode ended the scan. Scan it again; if "
                    "it keeps happening, set the scanner to serial/USB-COM mode.",
                )
            raise AamvaError(
                "truncated", "The licence barcode was cut short after its first characters. Scan it again."
            )
        if any(t in text[:40] for t in _FILE_TYPES):
            raise AamvaError(
                "bad-header",
                "The start of the licence barcode is damaged (extra characters before its header). Scan it "
                "again; if it keeps failing, check the ID by eye and enter it manually.",
            )
        raise AamvaError(
            "not-aamva",
            "This barcode is not a driver's licence or ID card (no AAMVA header). Scan the large barcode on "
            "the back of the card.",
        )
    separators = text[1:pos]
    if not wedge and separators != LF + RS + CR:
        if len(separators) == 3 and separators[0] == LF and separators[2] == CR:
            # Some issuers put another separator in the middle (SC cards use FS 0x1C, aamvajs fixtures).
            warnings.append("non-standard record separator in the header")
        else:
            # Separators replaced or dropped (a scanner set to translate CR, a saved capture): the subfiles
            # are found line by line instead of by the header's offsets.
            warnings.append("header separators are not LF RS CR; read line by line")
            wedge = True
    if wedge:
        text = text.replace("\r\n", LF).replace(CR, LF).replace(RS, LF)
        pos = _file_type_at(text) or pos
    pos += 5
    head = text[pos : pos + 12]
    if len(head) < 10 or not head[:10].isdigit():
        raise AamvaError(
            "truncated", "The licence barcode was cut short in its header. Please scan it again."
        )
    iin = head[:6]
    version = int(head[6:8])
    if not 1 <= version <= 10:
        raise AamvaError(
            "unsupported-version",
            f"This licence uses AAMVA version {version}, which this register does not read "
            "(versions 1 to 10). Check the ID by eye and enter it manually.",
        )

    # Version >= 2 adds a 2-digit jurisdiction version before the entry count; some old cards contradict
    # their version, so try the layout the version implies first, then the other one.
    layouts = [True, False] if version >= 2 else [False, True]
    parsed = None
    for lax in (False, True):
        for has_jur_version in layouts:
            parsed = _try_designators(text, pos, has_jur_version, lax=lax)
            if parsed is not None:
                if has_jur_version != (version >= 2):
                    warnings.append(f"header layout does not match AAMVA version {version}")
                if lax:
                    # Alberta writes letters where the offset and length go (IdParser's AB sample).
                    warnings.append("the header's subfile offsets are not numbers; subfiles found by type")
                break
        if parsed is not None:
            break
    if parsed is None:
        raise AamvaError(
            "bad-header",
            "The licence barcode's header is damaged or out of order. Please scan it again; if it keeps "
            "failing, check the ID by eye and enter it manually.",
        )
    jur_version, designators, body_start = parsed

    subfiles = _split_subfiles(text, designators, body_start, wedge, warnings, typed)
    main = next(((t, e) for t, e in subfiles if t in ("DL", "ID")), None)
    if main is None:
        raise AamvaError(
            "no-licence-data",
            "The barcode has no driver's licence or ID section. Is this a licence from the US or Canada?",
        )
    doc_type, elements = main
    return _build(doc_type, elements, iin, version, jur_version, warnings)


def _file_type_at(text: str) -> int | None:
    """Where "ANSI " or "AAMVA" starts, at most ``_MAX_HEADER_SEPARATORS`` characters after the "@"."""
    for pos in range(1, min(len(text), 2 + _MAX_HEADER_SEPARATORS)):
        if text.startswith(_FILE_TYPES, pos):
            return pos
    return None


def _try_designators(
    text: str, pos: int, has_jur_version: bool, *, lax: bool = False
) -> tuple[int | None, list[tuple[str, int | None, int | None]], int] | None:
    """Jurisdiction version, designators (type, offset, length) and where the subfiles start.

    ``lax``: a designator whose offset or length is not a number keeps its type with unknown offset and
    length; the designators after it cannot be located, so reading stops there."""
    jur_version: int | None = None
    if has_jur_version:
        jur = text[pos + 8 : pos + 10]
        if not jur.isdigit():
            return None
        jur_version = int(jur)
        count_at = pos + 10
    else:
        count_at = pos + 8
    count_txt = text[count_at : count_at + 2]
    if not count_txt.isdigit() or int(count_txt) == 0:
        return None
    count = int(count_txt)
    cursor = count_at + 2
    designators: list[tuple[str, int | None, int | None]] = []
    for _ in range(count):
        d = text[cursor : cursor + 10]
        if _DESIGNATOR.fullmatch(d):
            designators.append((d[:2], int(d[2:6]), int(d[6:10])))
            cursor += 10
            continue
        if lax and re.fullmatch(r"[A-Z][A-Z0-9]", d[:2]) and not designators:
            designators.append((d[:2], None, None))
            return jur_version, designators, cursor + 2
        return None
    return jur_version, designators, cursor


def _split_subfiles(
    text: str,
    designators: list[tuple[str, int | None, int | None]],
    body_start: int,
    wedge: bool,
    warnings: list[str],
    typed: bool,
) -> list[tuple[str, dict[str, str]]]:
    """Each subfile's elements. The header's offset is tried first (raw bytes only); otherwise the subfile
    is the next place its type starts a segment (right after the designators, or after CR/LF)."""
    out: list[tuple[str, dict[str, str]]] = []
    cursor = body_start
    for index, (sub_type, offset, length) in enumerate(designators):
        prefix = len(sub_type)
        if not wedge and offset is not None and offset >= cursor and text.startswith(sub_type, offset):
            start = offset
        elif (
            index == 0
            and sub_type in ("DL", "ID")
            and not text.startswith(sub_type, cursor)
            and _DL_ELEMENT.match(text, cursor)
        ):
            # Old Connecticut (v01) and West Virginia cards start the subfile with its first element,
            # without repeating "DL" (IdParser's CT and WV samples).
            start, prefix = cursor, 0
            warnings.append(f"subfile {sub_type} does not start with its type")
        else:
            start = _segment_start(text, sub_type, cursor, loose=offset is None)
            if start >= 0 and not wedge and offset is not None:
                warnings.append(f"subfile {sub_type} is not at the offset its header gives")
        if start < 0:
            if index == 0 or sub_type in ("DL", "ID"):
                raise AamvaError(
                    "truncated",
                    "The licence barcode was cut short or is out of order: its licence data is not where the "
                    "header says. Please scan it again.",
                )
            warnings.append(f"subfile {sub_type} is missing (barcode cut short?)")
            break
        if wedge:
            end = len(text)
            for later_type, _, _ in designators[index + 1 :]:
                nxt = text.find(LF + later_type, start)
                if nxt >= 0:
                    end = min(end, nxt + 1)
        else:
            end = text.find(CR, start)
            if end < 0:
                end = len(text)
                if length is not None and len(text) - start < length:
                    if sub_type in ("DL", "ID"):
                        raise AamvaError(
                            "truncated",
                            "The licence barcode was cut short (its data ends early). Please scan it again.",
                        )
                    warnings.append(f"subfile {sub_type} is cut short")
        out.append((sub_type, _elements(text[start + prefix : end], sub_type, warnings, typed)))
        cursor = end
    return out


def _segment_start(text: str, sub_type: str, cursor: int, *, loose: bool = False) -> int:
    if text.startswith(sub_type, cursor):
        return cursor
    for sep in (CR, LF):
        found = text.find(sep + sub_type, cursor)
        if found >= 0:
            return found + 1
    if loose:
        # The header did not say where: the type followed by an element ID ("DLDCS...", Alberta).
        first = "D[A-Z]{2}" if sub_type in ("DL", "ID") else "[A-Z][A-Z0-9]{2}"
        m = re.compile(re.escape(sub_type) + f"(?={first})").search(text, cursor)
        if m:
            return m.start()
    return -1


def _elements(raw: str, sub_type: str, warnings: list[str], typed: bool) -> dict[str, str]:
    elements: dict[str, str] = {}
    skipped = 0
    run_together = sub_type in ("DL", "ID")
    for line in raw.replace(CR, LF).split(LF):
        line = line.strip(" \x00")
        if not line:
            continue
        if len(line) < 3 or not _ELEMENT_ID.fullmatch(line[:3]):
            # Not an element: Puerto Rico's trailing "8888..." filler, PDF417 control codes ("\\928...")
            # a decoder left after the last field. Skipped; a missing required field is still refused.
            skipped += 1
            continue
        if (
            run_together
            and _RUN_TOGETHER_ANY.search(line, 3)
            and len(set(_RUN_TOGETHER_AT.findall(line, 3))) >= 2
        ):
            # Separators were dropped: "DAQ123DCSSMITHDACJOHN..." runs elements together (wedge scanner).
            # Splitting on element IDs would be a guess (a value may contain "DAC"), so refuse.
            if typed:
                raise AamvaError(
                    "separators-lost",
                    "This is a driver's licence, but the scanner dropped the separators between its fields "
                    "(keyboard mode). Set the scanner to serial/USB-COM mode, or check the ID by eye and "
                    "enter it manually.",
                )
            raise AamvaError(
                "separators-lost",
                "This is a driver's licence, but its fields arrived run together (separators missing). "
                "Scan it again; if it repeats, check the ID by eye and enter it manually.",
            )
        elements.setdefault(line[:3], line[3:].rstrip())
    if skipped:
        warnings.append(f"{skipped} line(s) in subfile {sub_type} are not fields and were ignored")
    return elements


# ---------------------------------------------------------------------------------------------- fields


def _build(
    doc_type: str,
    el: dict[str, str],
    iin: str,
    version: int,
    jur_version: int | None,
    warnings: list[str],
) -> DriverLicence:
    def need(code: str, what: str) -> str:
        value = el.get(code, "").strip()
        if not value:
            raise AamvaError(
                "missing-field",
                f"The licence barcode has no {what}. It may be cut short or damaged: scan it again, or "
                "check the ID by eye.",
            )
        return value

    number = need("DAQ", "licence number")
    jurisdiction = need("DAJ", "issuing state or province")
    family, given, middle = _names(el)
    if not family:
        raise AamvaError(
            "missing-field", "The licence barcode has no name. Scan it again, or check the ID by eye."
        )

    country = el.get("DCG", "").strip().upper()
    if not country:
        country = "CAN" if jurisdiction in _CANADIAN_JURISDICTIONS else "USA"

    raw_dates = {"DBB": need("DBB", "date of birth"), "DBA": need("DBA", "expiry date")}
    if el.get("DBD", "").strip():
        raw_dates["DBD"] = el["DBD"].strip()
    dates = _dates(raw_dates, country, version, warnings)
    dob, expiry, issued = dates["DBB"], dates["DBA"], dates.get("DBD")
    if issued is not None and issued > expiry:
        raise AamvaError(
            "bad-date",
            "The licence barcode says it was issued after it expires. Check the ID by eye.",
        )
    if dob >= expiry:
        # Read as printed (IdParser's NY sample has birth = issue = expiry); the age and expiry checks of
        # check-in refuse such a card anyway, with their own reason.
        warnings.append("the date of birth is not before the expiry date: check the card by eye")

    sex = {"1": "M", "2": "F", "9": "X", "M": "M", "F": "F", "X": "X"}.get(el.get("DBC", "").strip().upper())
    dda = el.get("DDA", "").strip().upper()
    return DriverLicence(
        document_type=doc_type,
        document_number=number,
        family_name=family,
        given_name=given,
        middle_name=middle,
        date_of_birth=dob,
        expiry=expiry,
        issue_date=issued,
        jurisdiction=jurisdiction.upper(),
        postal_code=_postal(el.get("DAK", ""), country),
        country=country,
        sex=sex,
        real_id=(dda == "F") if dda else None,
        iin=iin,
        aamva_version=version,
        jurisdiction_version=jur_version,
        warnings=tuple(warnings),
    )


def _names(el: dict[str, str]) -> tuple[str, str, str]:
    family = _name(el.get("DCS", ""))
    given = _name(el.get("DAC", ""))
    middle = _name(el.get("DAD", ""))
    if not given and _name(el.get("DCT", "")):
        # Version 2 (and some 1): DCT holds given names, first then middle, separated by space or comma.
        parts = re.split(r"[ ,]+", _name(el["DCT"]), maxsplit=1)
        given, middle = parts[0], (parts[1] if len(parts) > 1 else middle)
    if " " in given and not middle:
        # The D20 person-name rule allows no space in a first name; Wyoming puts the middle initial in
        # DAC ("MOTORIST E", IdParser's WY sample): the last word is the middle name.
        given, middle = given.rsplit(" ", 1)
    if not family and el.get("DAB"):
        family = _name(el["DAB"])
    if (not family or not given) and el.get("DAA"):
        full = _name(el["DAA"])
        if "," in full:
            # Version 1 full name "FAMILY,GIVEN,MIDDLE[,SUFFIX]"; a space may separate given and middle
            # ("SMITH, MARY JONES", OR v01). "JOHNSON,JACK,,3RD" has no middle name (MD v01).
            parts = [p.strip() for p in full.split(",")]
            rest = parts[1].split(maxsplit=1) if len(parts) > 1 else []
            f, g = parts[0], (rest[0] if rest else "")
            m = rest[1] if len(rest) > 1 else (parts[2] if len(parts) > 2 else "")
        else:
            # No comma: given names first, family name last ("JOHN P SMITH", PA v01; c0shea/IdParser and
            # the AAMVA 2000 examples read it so).
            words = full.split()
            f = words[-1] if words else ""
            g = words[0] if len(words) > 1 else ""
            m = " ".join(words[1:-1])
        family, given, middle = family or f, given or g, middle or m
    return family, given, middle


def _name(value: str) -> str:
    """A name field without padding or a trailing comma (ON: "DCSTESTER,"); "NONE" means none."""
    value = value.strip().rstrip(",").strip()
    return "" if value.upper() in ("NONE", "UNAVL", "UNAVAILABLE") else value


def _date(value: str, fmt: str) -> date | None:
    if len(value) != 8 or not value.isdigit():
        return None
    if fmt == "MDY":
        month, day, year = int(value[0:2]), int(value[2:4]), int(value[4:8])
    else:
        year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
    if not 1900 <= year <= 2199:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _dates(raw: dict[str, str], country: str, version: int, warnings: list[str]) -> dict[str, date]:
    """US cards use MMDDCCYY, Canadian CCYYMMDD from version 3; old cards contradict this (MD v01 uses
    CCYYMMDD, devices.md §3). Try both for every date, and accept one format only if it reads every date."""
    expected = "YMD" if (country == "CAN" and version >= 3) else "MDY"
    names = {"DBB": "date of birth", "DBA": "expiry date", "DBD": "issue date"}
    candidates: dict[str, dict[str, date]] = {"MDY": {}, "YMD": {}}
    for code, value in raw.items():
        for fmt in candidates:
            parsed = _date(value, fmt)
            if parsed is not None:
                candidates[fmt][code] = parsed
    complete = [fmt for fmt in ("MDY", "YMD") if len(candidates[fmt]) == len(raw)]
    if not complete:
        unreadable = [names[c] for c in raw if all(c not in candidates[f] for f in candidates)]
        if unreadable:
            raise AamvaError(
                "bad-date",
                f"The licence's {unreadable[0]} is unreadable. Check the ID by eye.",
            )
        raise AamvaError(
            "ambiguous-date",
            "The licence's dates are written in mixed formats, so they cannot be trusted. Check the ID by eye.",
        )
    if len(complete) == 2 and candidates["MDY"] != candidates["YMD"]:
        raise AamvaError(
            "ambiguous-date",
            "The licence's dates can be read two ways. Check the date of birth and expiry on the card by eye.",
        )
    chosen = expected if expected in complete else complete[0]
    if chosen != expected:
        warnings.append(
            f"dates are {'CCYYMMDD' if chosen == 'YMD' else 'MMDDCCYY'}, not what the version implies"
        )
    return candidates[chosen]


def _postal(value: str, country: str) -> str:
    value = value.strip().replace(" ", "")
    if country == "USA" and value.isdigit() and len(value) >= 5:
        # US ZIPs are zero-padded to 9 digits (devices.md §3); a 0000 extension means "none".
        zip5, plus4 = value[:5], value[5:9]
        return zip5 if not plus4 or plus4 == "0000" else f"{zip5}-{plus4}"
    return value.upper()
