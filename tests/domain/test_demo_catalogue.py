import re
from datetime import date

import msgspec
import pytest

from hub.domain.aamva import parse_licence
from hub.domain.catalog import CatalogIndex, Customer, Package, Product, sellability, tag_system
from hub.domain.demo_catalogue import SCENARIOS, build_demo_store

TODAY = date(2026, 3, 14)
STORE = build_demo_store(TODAY)
PRODUCTS = {p.id: p for p in STORE.products}


def test_deterministic_for_seed_and_day():
    again = build_demo_store(TODAY)
    assert msgspec.json.encode(again) == msgspec.json.encode(STORE)
    assert build_demo_store(TODAY, seed=1).packages != STORE.packages


def test_dozens_of_products_across_every_category():
    assert len(STORE.products) >= 40
    categories = {p.category for p in STORE.products}
    assert {"flower", "pre-roll", "vape", "concentrate", "edible", "beverage", "topical"} <= categories
    assert any(p.sold_by == "weight" for p in STORE.products)
    assert len(PRODUCTS) == len(STORE.products)
    barcodes = [p.barcode for p in STORE.products if p.barcode]
    assert len(barcodes) == len(set(barcodes))
    for p in STORE.products:
        assert p.price_cents > 0 and p.coa_ref
        assert p.limits.category == p.category
        if p.category in ("flower", "pre-roll", "vape", "concentrate"):
            assert p.thc_bp > 0 and p.limits.thc_mg > 0


def test_upc_check_digits():
    for p in STORE.products:
        if p.barcode:
            d = [int(c) for c in p.barcode]
            assert (sum(d[0:11:2]) * 3 + sum(d[1:11:2]) + d[11]) % 10 == 0, p.barcode


def test_hundreds_of_packages_with_metrc_labels():
    assert len(STORE.packages) >= 200
    tags = [p.tag for p in STORE.packages]
    assert len(tags) == len(set(tags))
    for pkg in STORE.packages:
        assert re.fullmatch(r"1A4[0-9A-F]{21}", pkg.tag) and tag_system(pkg.tag) == "metrc"
        assert pkg.product_id in PRODUCTS
        assert pkg.received_at is not None and pkg.received_at.tzinfo is not None
    assert all(p.quantity > 1000 for p in STORE.packages if PRODUCTS[p.product_id].sold_by == "weight")


def test_every_refusal_scenario_is_present_and_most_stock_sells():
    by_tag = {p.tag: p for p in STORE.packages}
    expected = {
        "on_hold": "on_hold",
        "quarantined": "quarantined",
        "expired": "expired",
        "lab_failed": "lab_not_passed",
        "lab_pending": "lab_not_passed",
        "finished": "finished",
    }
    assert set(STORE.scenarios) == set(SCENARIOS)
    for name, code in expected.items():
        pkg = by_tag[STORE.scenarios[name]]
        assert sellability(pkg, PRODUCTS[pkg.product_id], TODAY).code == code
    last = by_tag[STORE.scenarios["last_unit"]]
    assert last.quantity == 1 and sellability(last, PRODUCTS[last.product_id], TODAY) is None
    sellable = [p for p in STORE.packages if sellability(p, PRODUCTS[p.product_id], TODAY) is None]
    assert len(sellable) > 0.85 * len(STORE.packages)
    # every product has something to sell
    assert {p.product_id for p in sellable} == set(PRODUCTS)


@pytest.mark.parametrize("role", [c.role for c in STORE.customers])
def test_demo_licences_parse_and_match_the_customer(role):
    demo = STORE.customer(role)
    lic = parse_licence(demo.id_scan)
    assert lic.date_of_birth == demo.customer.birth_date
    assert lic.expiry == demo.customer.id_expires_on
    assert lic.jurisdiction == demo.customer.residency
    assert (lic.family_name, lic.given_name) == (demo.family_name, demo.given_name)
    assert lic.warnings == ()


def test_customer_roles():
    adult = STORE.customer("adult").customer
    assert adult.residency == "MI" and adult.customer_type == "adult"
    assert STORE.customer("non_resident").customer.residency != "MI"
    patient = STORE.customer("medical").customer
    assert patient.medical_registration and patient.medical_registration_expires_on > TODAY
    assert STORE.customer("expired_id").customer.id_expires_on < TODAY
    under = STORE.customer("under_21").customer.birth_date
    assert under.replace(year=under.year + 21) > TODAY
    assert STORE.customer("turns_21_today").customer.birth_date == date(2005, 3, 14)
    ids = [c.customer.id_hash for c in STORE.customers]
    assert len(set(ids)) == len(ids) and all(len(h) == 64 for h in ids)
    # the non-resident's licence comes from another state's issuer
    assert "ANSI 636031" in STORE.customer("non_resident").id_scan


def test_home_jurisdiction_and_custom_hasher():
    store = build_demo_store(TODAY, home_jurisdiction="WI", id_hasher=lambda j, n: f"{j}|{n}")
    assert store.customer("adult").customer.id_hash.startswith("WI|")
    assert store.customer("non_resident").customer.residency == "MI"
    with pytest.raises(ValueError, match="no demo IIN"):
        build_demo_store(TODAY, home_jurisdiction="XX")


def test_survives_the_store_codec_and_the_search_index():
    for value, typ in (
        (STORE.products[0], Product),
        (STORE.packages[0], Package),
        (STORE.customers[0].customer, Customer),
    ):
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(value), type=typ) == value
    idx = CatalogIndex(STORE.products)
    assert any("Blue Dream" in p.name for p in idx.search("blue dream"))
    assert {p.category for p in idx.search("gummies")} == {"edible"}


def test_leap_day_build():
    store = build_demo_store(date(2028, 2, 29))
    assert store.customer("turns_21_today").customer.birth_date == date(2007, 2, 28)
