"""Exit and shelf labels from the jurisdiction's template (``[label]`` in its rules file): the state's
required text (warning, THC/CBD, licence, package tag, harvest and packaged dates, net weight) filled from
the package, its product and its lab result, as ZPL II for the label printer and as plain lines for a
preview. Sans-I/O.

ZPL: ``^FB`` wraps the long warning in a field block; ``^BCN`` prints the tag as Code 128 with its text;
``^BQN,2,<mag>`` a QR code whose data is ``QA,<url>`` (model 2, error correction Q, automatic input:
Zebra ZPL II Programming Guide, ^BQ; devices.md §5) for the certificate of analysis. Field data goes
through ``^FH`` escapes like every other label (``drivers/zpl.py``), so no product text can inject a
command.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import msgspec

from hub.domain.limits.rules import LabelPolicy

LabelKind = Literal["exit", "shelf"]


class LabelFacts(msgspec.Struct, frozen=True, kw_only=True):
    product: str
    brand: str
    category: str
    package_tag: str
    licence: str
    store_name: str
    net_weight: str = ""  # "3.5 g", "10 units"
    thc: str = ""  # "THC 22.50 %" or "THC 100 mg"
    cbd: str = ""
    packaged_on: date | None = None
    harvested_on: date | None = None
    coa_url: str = ""
    price: str = ""  # shelf labels
    shelf_location: str = ""


class LabelText(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[tuple[str, str]]  # (field, text) in print order
    missing: list[str]  # required fields the store has no data for: the label is printed with a dash


def _pct(bp: int) -> str:
    return f"{bp // 100}.{bp % 100:02d} %"


def potency(thc_bp: int, cbd_bp: int, thc_mg: int, cbd_mg: int) -> tuple[str, str]:
    thc = f"THC {_pct(thc_bp)}" if thc_bp else (f"THC {thc_mg} mg" if thc_mg else "")
    cbd = f"CBD {_pct(cbd_bp)}" if cbd_bp else (f"CBD {cbd_mg} mg" if cbd_mg else "")
    return thc, cbd


def label_text(policy: LabelPolicy, facts: LabelFacts, kind: LabelKind = "exit") -> LabelText:
    """Every required field in a fixed order, with its words; what the store lacks is named in ``missing``."""
    values: dict[str, str] = {
        "product": f"{facts.brand} {facts.product}".strip(),
        "net_weight": f"Net wt {facts.net_weight}" if facts.net_weight else "",
        "thc": facts.thc or "",
        "cbd": facts.cbd or "",
        "licence": f"Licence {facts.licence} · {facts.store_name}" if facts.licence else "",
        "package_tag": facts.package_tag,
        "packaged_date": f"Packaged {facts.packaged_on.isoformat()}" if facts.packaged_on else "",
        "harvest_date": f"Harvested {facts.harvested_on.isoformat()}" if facts.harvested_on else "",
        "warning": policy.warning,
        "lab_qr": facts.coa_url,
    }
    order = [
        "product",
        "net_weight",
        "thc",
        "cbd",
        "licence",
        "packaged_date",
        "harvest_date",
        "package_tag",
        "warning",
    ]
    if kind == "shelf":
        order = ["product", "net_weight", "thc", "cbd", "package_tag", "warning"]
    wanted = [f for f in order if f in policy.required or f == "product"]
    lines: list[tuple[str, str]] = []
    missing: list[str] = []
    for f in wanted:
        v = values[f]
        if f == "cbd" and not v:
            v = "CBD 0 %"  # "none" is a value: the state asks for the figure, and zero is one
        if not v:
            missing.append(f)
            v = {"packaged_date": "Packaged —", "harvest_date": "Harvested —", "thc": "THC —"}.get(f, "—")
        lines.append((f, v))
    if kind == "shelf":
        if facts.price:
            lines.insert(1, ("price", facts.price))
        if facts.shelf_location:
            lines.append(("shelf_location", f"Shelf {facts.shelf_location}"))
    if "lab_qr" in policy.required and not facts.coa_url:
        missing.append("lab_qr")
    if policy.symbol and kind == "exit":
        lines.append(("symbol", f"[{policy.symbol}]"))
    return LabelText(lines=lines, missing=missing)


def _fh(text: str) -> str:
    out = []
    for ch in text:
        if ch in "_^~\\" or ord(ch) < 0x20:
            out.append("".join(f"_{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "^FH_^FD" + "".join(out) + "^FS"


def render_zpl(
    policy: LabelPolicy, facts: LabelFacts, kind: LabelKind = "exit", *, dpi: int = 203, copies: int = 1
) -> bytes:
    """A 4 x 3 inch exit label (4 x 2 for a shelf label) with every required field."""
    t = label_text(policy, facts, kind)
    pw = 4 * dpi
    ll = (3 if kind == "exit" else 2) * dpi
    out = ["^XA", "^CI28", f"^PW{pw}", f"^LL{ll}"]
    y = 16
    qr = bool(facts.coa_url)
    text_width = pw - 40 - (150 if qr else 0)
    for field, value in t.lines:
        if field == "package_tag":
            out.append(f"^FO20,{y}^BY2^BCN,60,Y,N,N" + _fh(value))
            y += 96
        elif field == "warning":
            # the warning wraps in a field block of up to 9 lines of small print
            out.append(f"^FO20,{y}^A0N,16,16^FB{pw - 40},9,2,L" + _fh(value))
            y += 9 * 18
        else:
            size = 30 if field == "product" else 22
            out.append(f"^FO20,{y}^A0N,{size},{size}^FB{text_width},1,0,L" + _fh(value[:80]))
            y += size + 6
    if qr:
        # QR (model 2), magnification 4, error correction Q, automatic data mode: "QA," then the URL
        out.append(f"^FO{pw - 170},16^BQN,2,4" + _fh("QA," + facts.coa_url))
    out.append(f"^PQ{max(1, copies)}")
    out.append("^XZ")
    return ("\n".join(out) + "\n").encode("utf-8")


def field_text(zpl: bytes) -> str:
    """The printable text of a label (escapes decoded), for tests and the preview: what a person reads."""
    text = zpl.decode("utf-8")
    parts = []
    for chunk in text.split("^FD")[1:]:
        data = chunk.split("^FS", 1)[0]
        raw = bytearray()
        i = 0
        b = data.encode("utf-8")
        while i < len(b):
            if b[i : i + 1] == b"_" and i + 2 < len(b) + 1:
                try:
                    raw.append(int(b[i + 1 : i + 3], 16))
                    i += 3
                    continue
                except ValueError:
                    pass
            raw.append(b[i])
            i += 1
        parts.append(raw.decode("utf-8", "replace"))
    return "\n".join(parts)
