from datetime import UTC, date, datetime, timedelta

import pytest

from hub.domain.catalog import CatalogIndex, Package, Product, sellability, tag_system
from hub.domain.items import LimitAttributes

TODAY = date(2026, 3, 14)


def product(pid="SKU-1", name="Blue Dream 3.5g", brand="Grove", category="flower", strain="Blue Dream", **kw):
    return Product(
        id=pid,
        name=name,
        brand=brand,
        category=category,
        strain=strain,
        sold_by=kw.pop("sold_by", "each"),
        price_cents=kw.pop("price_cents", 3500),
        limits=kw.pop("limits", LimitAttributes(category=category, net_weight_mg=3500)),
        **kw,
    )


def package(**kw):
    base = dict(
        tag="1A4060300002A1B000000001",
        product_id="SKU-1",
        quantity=10,
        status="active",
        lab_testing="passed",
        expires_on=TODAY + timedelta(days=90),
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    base.update(kw)
    return Package(**base)


def test_sellable_package_passes():
    assert sellability(package(), product(), TODAY, 10) is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"status": "on_hold"}, "on_hold"),
        ({"status": "quarantined"}, "quarantined"),
        ({"status": "finished"}, "finished"),
        ({"quantity": 0}, "finished"),
        ({"expires_on": TODAY - timedelta(days=1)}, "expired"),
        ({"lab_testing": "failed"}, "lab_not_passed"),
        ({"lab_testing": "submitted"}, "lab_not_passed"),
        ({"lab_testing": "not_submitted"}, "lab_not_passed"),
        ({"product_id": "OTHER"}, "unknown_product"),
    ],
)
def test_each_package_state_is_refused_with_its_reason(changes, code):
    refusal = sellability(package(**changes), product(), TODAY)
    assert refusal is not None and refusal.code == code
    assert refusal.message


def test_expiry_day_itself_is_still_sellable():
    assert sellability(package(expires_on=TODAY), product(), TODAY) is None


def test_unknown_package_and_short_quantity():
    assert sellability(None, product(), TODAY).code == "unknown_package"
    refusal = sellability(package(quantity=2), product(), TODAY, 3)
    assert refusal.code == "short" and "2 units" in refusal.message


def test_short_by_one_milligram_on_bulk():
    bulk = product(
        sold_by="weight", price_cents=1000, limits=LimitAttributes(category="flower", net_weight_mg=1000)
    )
    assert sellability(package(quantity=28_000), bulk, TODAY, 28_000) is None
    refusal = sellability(package(quantity=28_000), bulk, TODAY, 28_001)
    assert refusal.code == "short" and "28 g" in refusal.message


def test_tag_system():
    assert tag_system("1A4060300002A1B000000001") == "metrc"
    assert tag_system("1234567890123456") == "biotrack"
    assert tag_system("1A40603") is None
    assert tag_system("1a4060300002a1b000000001") is None


def test_search_by_prefix_across_fields_and_ranking():
    idx = CatalogIndex(
        [
            product("P1", "Blue Dream 3.5g", "Grove", "flower", "Blue Dream"),
            product("P2", "Blueberry Gummies", "Kiva", "edible", "Blueberry"),
            product("P3", "Sour Diesel Cart", "Stiiizy", "vape", "Sour Diesel"),
            product("P4", "Dream Pre-Roll", "Grove", "pre-roll", "Blue Dream"),
        ]
    )
    # exact token "blue" beats the prefix of "blueberry"; a name starting with the query comes first
    assert [p.id for p in idx.search("blue")] == ["P1", "P4", "P2"]
    assert [p.id for p in idx.search("blue dr")][0] == "P1"
    assert {p.id for p in idx.search("grove")} == {"P1", "P4"}
    assert [p.id for p in idx.search("vape")] == ["P3"]
    assert [p.id for p in idx.search("preroll")] == ["P4"]
    assert [p.id for p in idx.search("PRE-R")] == ["P4"]
    assert idx.search("") == []
    assert idx.search("zzz") == []
    # every term must match
    assert idx.search("kiva diesel") == []


def test_search_folds_accents_and_case():
    idx = CatalogIndex([product("P1", "Açaí Chews", "Wyld", "edible", "")])
    assert [p.id for p in idx.search("ACAI")] == ["P1"]


def test_index_updates_incrementally():
    idx = CatalogIndex([product("P1", "Blue Dream", "Grove")])
    idx.upsert(product("P1", "Green Crack", "Grove", strain="Green Crack"))
    assert idx.search("blue") == []
    assert [p.id for p in idx.search("green")] == ["P1"]
    idx.upsert(product("P2", "Gelato", "Cookies", strain="Gelato"))
    assert [p.id for p in idx.search("gel")] == ["P2"]
    idx.remove("P1")
    assert idx.search("green") == [] and idx.search("grove") == []
    assert len(idx) == 1
    idx.remove("nope")  # idempotent


def test_inactive_products_hidden_unless_asked():
    idx = CatalogIndex([product("P1", "Old Stock", active=False)])
    assert idx.search("old") == []
    assert [p.id for p in idx.search("old", include_inactive=True)] == ["P1"]
