"""Parsing product and package CSV files for ``storehub import`` (pure: text in, Structs out).

People write these files in spreadsheets, so the columns use people's units (dollars, grams, percent,
millilitres) and are converted exactly (Decimal, never float) to the store's integers (cents, mg, basis
points, µl). A value that would need rounding is an error, not a guess. The first bad row stops the import
with an error naming its line and column; the caller imports nothing in that case.

products.csv — required: sku, name, brand, category, sold_by (each|weight), price (per unit, or per gram
  for weight); optional: strain, strain_type, tax_class, barcode, thc_pct, cbd_pct, thc_mg, cbd_mg (per
  unit, dosed products), net_weight_g, concentrate_g, volume_ml, coa_ref.
packages.csv — required: tag, sku, quantity (units; grams for weight products unless unit=mg); optional:
  unit, status, lab_testing, expires_on (YYYY-MM-DD), location, received_at (ISO 8601 with offset, or a
  date = 00:00 UTC), batch.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

import msgspec

from hub.domain.catalog import LabTesting, Package, PackageStatus, Product, tag_system
from hub.domain.items import LimitAttributes
from hub.domain.scan_classify import catalogue_barcode

CATEGORIES = frozenset(
    {
        "flower",
        "pre-roll",
        "infused-pre-roll",
        "concentrate",
        "vape",
        "edible",
        "beverage",
        "tincture",
        "capsule",
        "topical",
        "plant",
        "seed",
        "clone",
        "accessory",
    }
)
PRODUCT_COLUMNS = {
    "sku", "name", "brand", "category", "sold_by", "price", "strain", "strain_type", "tax_class", "barcode",
    "thc_pct", "cbd_pct", "thc_mg", "cbd_mg", "net_weight_g", "concentrate_g", "volume_ml", "coa_ref",
}  # fmt: skip
PRODUCT_REQUIRED = ("sku", "name", "brand", "category", "sold_by", "price")
PACKAGE_COLUMNS = {
    "tag", "sku", "quantity", "unit", "status", "lab_testing", "expires_on", "location", "received_at", "batch",
}  # fmt: skip
PACKAGE_REQUIRED = ("tag", "sku", "quantity")


# The largest number a file may give: integers the store keeps and a browser reads exactly (JavaScript's
# Number.MAX_SAFE_INTEGER); a value beyond it is a typo or an attack, never a real quantity or price.
MAX_VALUE = 2**53 - 1


class CsvRowError(ValueError):
    """A bad row: ``line`` is the line number in the file (the header is line 1)."""

    def __init__(self, line: int, column: str, message: str) -> None:
        self.line = line
        self.column = column
        self.message = message
        where = f"line {line}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")


def _decimal(line: int, column: str, text: str, places: int, scale: int, what: str) -> int:
    """``text`` × ``scale`` as an exact integer; at most ``places`` decimals, never negative."""
    cleaned = text.strip().replace(",", "").removeprefix("$").removesuffix("%").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise CsvRowError(line, column, f"{text!r} is not a number ({what})") from None
    if not value.is_finite() or value < 0:
        raise CsvRowError(line, column, f"{text!r} must be a number, 0 or more ({what})")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places:
        raise CsvRowError(line, column, f"{text!r} has more than {places} decimal places ({what})")
    if value.adjusted() > 20 or int(value * scale) > MAX_VALUE:
        raise CsvRowError(line, column, f"{_short(text)} is too large ({what})")
    return int(value * scale)


def _short(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def decode_csv(data: bytes) -> str:
    """The file's text. Files must be UTF-8 ("CSV UTF-8" in a spreadsheet's Save As); anything else is
    refused naming the first byte that is not, rather than guessed (a guess turns "é" into mojibake)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvRowError(1, "", "the file is UTF-16; save it as CSV UTF-8 and import it again")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise CsvRowError(
            line,
            "",
            f"byte {column} (0x{data[exc.start]:02x}) is not UTF-8 text; save the file as CSV UTF-8 "
            "(it looks like Latin-1 or Windows-1252) and import it again",
        ) from None


def changed_fields(old: msgspec.Struct, new: msgspec.Struct) -> list[str]:
    """What importing ``new`` over ``old`` would change, one "field: old -> new" per field."""
    out = []
    for name in old.__struct_fields__:
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            out.append(f"{name}: {_show(a)} -> {_show(b)}")
    return out


def _show(value: Any) -> str:
    if isinstance(value, msgspec.Struct):
        return ", ".join(f"{k}={getattr(value, k)}" for k in value.__struct_fields__)
    return str(value)


def _reader(text: str, known: set[str], required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), skipinitialspace=True)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not header:
        raise CsvRowError(1, "", "the file is empty; the first line must name the columns")
    unknown = [h for h in header if h not in known]
    if unknown:
        raise CsvRowError(1, unknown[0], f"unknown column {unknown[0]!r}; known: {', '.join(sorted(known))}")
    missing = [r for r in required if r not in header]
    if missing:
        raise CsvRowError(1, missing[0], f"required column {missing[0]!r} is missing")
    reader.fieldnames = header
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # a field over csv.field_size_limit(), a NUL byte, a broken quote
            # the reader counts a line once it is parsed whole: the failure is on the next one
            raise CsvRowError(
                reader.line_num + 1, "", f"cannot be read as CSV ({exc}; a field may hold at most 128 KiB)"
            ) from None
        line = reader.line_num  # the row's last physical line (a quoted field may span lines)
        if None in row:
            raise CsvRowError(line, "", "more fields than columns in the header")
        values = {k: (v or "").strip() for k, v in row.items()}
        if not any(values.values()):
            continue
        for r in required:
            if not values.get(r):
                raise CsvRowError(line, r, "is empty")
        yield line, values


def _choice(line: int, column: str, value: str, allowed: tuple[str, ...]) -> str:
    v = value.strip().lower().replace(" ", "_")
    if v not in allowed:
        raise CsvRowError(line, column, f"{value!r} is not one of {', '.join(allowed)}")
    return v


def iter_products(text: str) -> Iterator[tuple[int, Product]]:
    """(line, product) per row, for a progress bar; raises CsvRowError at the first bad row."""
    seen: dict[str, int] = {}
    for line, v in _reader(text, PRODUCT_COLUMNS, PRODUCT_REQUIRED):
        sku = v["sku"]
        if sku in seen:
            raise CsvRowError(line, "sku", f"SKU {sku!r} already appears on line {seen[sku]}")
        seen[sku] = line
        category = v["category"].lower()
        if category not in CATEGORIES:
            raise CsvRowError(
                line, "category", f"{v['category']!r} is not one of {', '.join(sorted(CATEGORIES))}"
            )
        sold_by = _choice(line, "sold_by", v["sold_by"], ("each", "weight"))

        def num(
            column: str, places: int, scale: int, what: str, v: dict[str, str] = v, line: int = line
        ) -> int:
            return _decimal(line, column, v[column], places, scale, what) if v.get(column) else 0

        price = num("price", 2, 100, "dollars")
        if price <= 0:
            raise CsvRowError(line, "price", "a price must be more than 0")
        thc_bp = num("thc_pct", 2, 100, "percent")
        cbd_bp = num("cbd_pct", 2, 100, "percent")
        if thc_bp > 10_000 or cbd_bp > 10_000:
            raise CsvRowError(
                line, "thc_pct" if thc_bp > 10_000 else "cbd_pct", "a potency cannot exceed 100%"
            )
        thc_mg = num("thc_mg", 0, 1, "whole milligrams per unit")
        net_mg = num("net_weight_g", 3, 1000, "grams")
        if sold_by == "weight":
            # A bulk product's price and limit attributes are per gram.
            if net_mg not in (0, 1000):
                raise CsvRowError(
                    line, "net_weight_g", "a product sold by weight is described per gram: leave empty or 1"
                )
            net_mg = 1000
        product = Product(
            id=sku,
            name=v["name"],
            brand=v["brand"],
            category=category,
            sold_by=sold_by,  # type: ignore[arg-type]
            price_cents=price,
            limits=LimitAttributes(
                category=category,
                net_weight_mg=net_mg,
                concentrate_mg=num("concentrate_g", 3, 1000, "grams"),
                thc_mg=thc_mg or -(-net_mg * thc_bp // 10_000),  # rounded up: a limit is never under-counted
                volume_ul=num("volume_ml", 3, 1000, "millilitres"),
            ),
            strain=v.get("strain", ""),
            strain_type=v.get("strain_type", "").lower(),
            tax_class=v.get("tax_class") or ("general" if category == "accessory" else "cannabis"),
            barcode=catalogue_barcode(v.get("barcode", "")),  # UPC-E stored as its UPC-A, as scanned
            thc_bp=thc_bp,
            cbd_bp=cbd_bp,
            thc_mg_per_unit=thc_mg,
            cbd_mg_per_unit=num("cbd_mg", 0, 1, "whole milligrams per unit"),
            coa_ref=v.get("coa_ref", ""),
        )
        yield line, product


def parse_products(text: str) -> list[Product]:
    return [p for _, p in iter_products(text)]


def _parse_date(line: int, column: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CsvRowError(line, column, f"{text!r} is not a date (YYYY-MM-DD)") from None


def _parse_received(line: int, text: str) -> datetime:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CsvRowError(line, "received_at", f"{text!r} is not an ISO 8601 date or time") from None
    if at.tzinfo is None:
        raise CsvRowError(
            line, "received_at", f"{text!r} needs a UTC offset (e.g. 2026-03-14T09:30:00-04:00)"
        )
    return at.astimezone(UTC)


def iter_packages(
    text: str, products: Mapping[str, Product] | Callable[[str], Product | None]
) -> Iterator[tuple[int, Package]]:
    """(line, package) per row. ``products`` resolves a SKU (a mapping, or a lookup function such as a
    store read), so the quantity is read in the product's unit."""
    lookup: Callable[[str], Product | None] = products.get if isinstance(products, Mapping) else products
    seen: dict[str, int] = {}
    statuses: tuple[str, ...] = get_args(PackageStatus)
    lab_states: tuple[str, ...] = get_args(LabTesting)
    for line, v in _reader(text, PACKAGE_COLUMNS, PACKAGE_REQUIRED):
        tag = v["tag"].upper()
        if tag_system(tag) is None:
            raise CsvRowError(
                line,
                "tag",
                f"{v['tag']!r} is neither a 24-character Metrc tag nor a 16-digit BioTrack barcode",
            )
        if tag in seen:
            raise CsvRowError(line, "tag", f"package {tag} already appears on line {seen[tag]}")
        seen[tag] = line
        product = lookup(v["sku"])
        if product is None:
            raise CsvRowError(line, "sku", f"no product with SKU {v['sku']!r} (import the products first)")
        unit = v.get("unit", "").lower() or ("g" if product.sold_by == "weight" else "each")
        if product.sold_by == "weight":
            if unit not in ("g", "mg"):
                raise CsvRowError(line, "unit", f"{product.name} is sold by weight: unit must be g or mg")
            quantity = _decimal(
                line, "quantity", v["quantity"], 3 if unit == "g" else 0, 1000 if unit == "g" else 1, unit
            )
        else:
            if unit != "each":
                raise CsvRowError(line, "unit", f"{product.name} is sold by the unit: unit must be each")
            quantity = _decimal(line, "quantity", v["quantity"], 0, 1, "whole units")
        fields: dict[str, Any] = {}
        if v.get("status"):
            fields["status"] = _choice(line, "status", v["status"], statuses)
        if v.get("lab_testing"):
            fields["lab_testing"] = _choice(line, "lab_testing", v["lab_testing"], lab_states)
        if v.get("expires_on"):
            fields["expires_on"] = _parse_date(line, "expires_on", v["expires_on"])
        if v.get("received_at"):
            fields["received_at"] = _parse_received(line, v["received_at"])
        yield (
            line,
            Package(
                tag=tag,
                product_id=product.id,
                quantity=quantity,
                location=v.get("location", ""),
                batch=v.get("batch", ""),
                **fields,
            ),
        )


def parse_packages(
    text: str, products: Mapping[str, Product] | Callable[[str], Product | None]
) -> list[Package]:
    return [p for _, p in iter_packages(text, products)]
