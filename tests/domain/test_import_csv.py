from datetime import UTC, date, datetime

import pytest

from hub.domain.catalog import Package
from hub.domain.import_csv import (
    MAX_VALUE,
    CsvRowError,
    _decimal,
    changed_fields,
    decode_csv,
    iter_products,
    parse_packages,
    parse_products,
)

PRODUCTS = """sku,name,brand,category,sold_by,price,strain,thc_pct,net_weight_g,thc_mg,volume_ml,barcode
FLW-1,Blue Dream 3.5g,Pine Ridge,flower,each,$38.00,Blue Dream,21.5,3.5,,,850600000012
FLW-B,OG Kush bulk,House,flower,weight,10.05,OG Kush,24.2,,,,
EDI-1,"Gummies, watermelon 10x10mg",Cascadia,edible,each,20,,,40,100,,
BEV-1,Lemon Fizz,Fizz,beverage,each,8.00,,,,10,355,

ACC-1,Glass pipe,Generic,accessory,each,15,,,,,,
"""


def products():
    return {p.id: p for p in parse_products(PRODUCTS)}


def test_products_convert_exactly():
    p = products()
    assert p["FLW-1"].price_cents == 3800 and p["FLW-1"].thc_bp == 2150
    assert (
        p["FLW-1"].limits.net_weight_mg == 3500 and p["FLW-1"].limits.thc_mg == 753
    )  # 21.5 % of 3.5 g = 752.5, rounded up
    assert p["FLW-B"].sold_by == "weight" and p["FLW-B"].price_cents == 1005
    assert p["FLW-B"].limits.net_weight_mg == 1000 and p["FLW-B"].limits.thc_mg == 242  # per gram
    assert p["EDI-1"].name == "Gummies, watermelon 10x10mg" and p["EDI-1"].limits.thc_mg == 100
    assert p["BEV-1"].limits.volume_ul == 355_000
    assert p["ACC-1"].tax_class == "general" and p["FLW-1"].tax_class == "cannabis"
    assert [line for line, _ in iter_products(PRODUCTS)] == [2, 3, 4, 5, 7]  # the blank line is skipped


HEADER = "sku,name,brand,category,sold_by,price,thc_pct,net_weight_g\n"


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ("X,N,B,flower,each,12.345,,", "price", "more than 2 decimal places"),
        ("X,N,B,flower,each,abc,,", "price", "not a number"),
        ("X,N,B,flower,each,-1,,", "price", "0 or more"),
        ("X,N,B,flower,each,0,,", "price", "more than 0"),
        ("X,N,B,flowers,each,10,,", "category", "not one of"),
        ("X,N,B,flower,bulk,10,,", "sold_by", "not one of"),
        ("X,N,B,flower,each,10,101,", "thc_pct", "cannot exceed 100%"),
        ("X,N,B,flower,each,10,,3.5001", "net_weight_g", "more than 3 decimal places"),
        ("X,N,B,flower,weight,10,,3.5", "net_weight_g", "per gram"),
        (",N,B,flower,each,10,,", "sku", "is empty"),
        ("X,N,B,flower,each,10,,,extra", "", "more fields"),
    ],
)
def test_bad_product_row_names_line_and_column(row, column, words):
    text = HEADER + "OK,Fine,B,edible,each,5,,\n" + row + "\n"
    with pytest.raises(CsvRowError) as err:
        parse_products(text)
    assert err.value.line == 3 and err.value.column == column
    assert words in str(err.value) and str(err.value).startswith("line 3")


def test_header_problems():
    with pytest.raises(CsvRowError, match="unknown column 'prcie'"):
        parse_products("sku,name,brand,category,sold_by,prcie\n")
    with pytest.raises(CsvRowError, match="required column 'price' is missing"):
        parse_products("sku,name,brand,category,sold_by\n")
    with pytest.raises(CsvRowError, match="empty"):
        parse_products("")
    with pytest.raises(CsvRowError, match="already appears on line 2"):
        parse_products(HEADER + "X,N,B,edible,each,5,,\nX,N,B,edible,each,5,,\n")
    # a BOM from Excel and upper-case headers are fine
    assert parse_products("\ufeffSKU,Name,Brand,Category,Sold_By,Price\nX,N,B,edible,each,5\n")[0].id == "X"


PACKAGES = """tag,sku,quantity,unit,status,lab_testing,expires_on,location,received_at
1A4060300002A1B000000001,FLW-1,24,,,,2026-09-30,Vault A,2026-03-01T09:30:00-05:00
1a4060300002a1b000000002,FLW-B,453.592,,on hold,passed,,,2026-03-02
1234567890123456,FLW-B,28000,mg,,retest_passed,,,
"""


def test_packages_in_the_products_unit():
    pk = parse_packages(PACKAGES, products())
    assert pk[0].quantity == 24 and pk[0].expires_on == date(2026, 9, 30) and pk[0].location == "Vault A"
    assert pk[0].received_at == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)
    assert pk[1].tag == "1A4060300002A1B000000002" and pk[1].quantity == 453_592 and pk[1].status == "on_hold"
    assert pk[1].received_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert pk[2].quantity == 28_000 and pk[2].lab_testing == "retest_passed"
    # a lookup function works as well as a mapping
    assert parse_packages(PACKAGES, products().get) == pk


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ("1A4060300002A1B00000000,FLW-1,1,,,,,,", "tag", "neither"),
        ("1A4060300002A1B000000009,NOPE,1,,,,,,", "sku", "import the products first"),
        ("1A4060300002A1B000000009,FLW-1,1.5,,,,,,", "quantity", "decimal places"),
        ("1A4060300002A1B000000009,FLW-1,1,g,,,,,", "unit", "sold by the unit"),
        ("1A4060300002A1B000000009,FLW-B,1,each,,,,,", "unit", "g or mg"),
        ("1A4060300002A1B000000009,FLW-1,1,,lost,,,,", "status", "not one of"),
        ("1A4060300002A1B000000009,FLW-1,1,,,maybe,,,", "lab_testing", "not one of"),
        ("1A4060300002A1B000000009,FLW-1,1,,,,2026-13-01,,", "expires_on", "not a date"),
        ("1A4060300002A1B000000009,FLW-1,1,,,,,,2026-03-01T09:30:00", "received_at", "UTC offset"),
        ("1A4060300002A1B000000001,FLW-1,1,,,,,,", "tag", "already appears on line 2"),
    ],
)
def test_bad_package_row(row, column, words):
    text = PACKAGES.splitlines()[0] + "\n" + PACKAGES.splitlines()[1] + "\n" + row + "\n"
    with pytest.raises(CsvRowError) as err:
        parse_packages(text, products())
    assert (err.value.line, err.value.column) == (3, column) and words in str(err.value)


def test_text_must_be_utf8_and_the_first_bad_byte_is_named() -> None:
    assert decode_csv("\ufeffsku,name\nA,Crème\n".encode()) == "sku,name\nA,Crème\n"
    with pytest.raises(CsvRowError) as e:
        decode_csv("sku,name\nA,Crème\n".encode("latin-1"))
    assert (e.value.line, "byte 5 (0xe8)") == (2, e.value.message[:13])
    with pytest.raises(CsvRowError, match="UTF-16"):
        decode_csv("sku,name\n".encode("utf-16"))


def test_numbers_beyond_what_the_store_keeps_are_refused() -> None:
    assert _decimal(2, "quantity", str(MAX_VALUE), 0, 1, "units") == MAX_VALUE
    for text in (str(MAX_VALUE + 1), str(2**64), "1e30", "9" * 5000):
        with pytest.raises(CsvRowError, match="too large"):
            _decimal(2, "quantity", text, 0, 1, "units")


def test_changed_fields_say_what_an_update_would_change() -> None:
    old = Package(tag="1A4FF0100000022000000001", product_id="FLW-9", quantity=10)
    new = Package(tag="1A4FF0100000022000000001", product_id="FLW-9", quantity=999)
    assert changed_fields(old, new) == ["quantity: 10 -> 999"]
    assert changed_fields(old, old) == []


def test_a_upc_e_barcode_is_stored_as_the_upc_a_a_scan_looks_up():
    # issue 18's real product code: UPC-E 04963406 is UPC-A 049000006346 (GS1 zero-suppression)
    rows = HEADER.replace("\n", ",barcode\n") + (
        "ACC-2,Rolling papers,Raw,accessory,each,3,,,04963406\n"
        "ACC-3,Lighter,Bic,accessory,each,2,,,96385074\n"  # an EAN-8 (starts with 9): as typed
    )
    by_id = {p.id: p for p in parse_products(rows)}
    assert by_id["ACC-2"].barcode == "049000006346"
    assert by_id["ACC-3"].barcode == "96385074"
