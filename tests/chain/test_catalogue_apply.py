"""A store applies HQ's catalogue document by version, whole or not at all, in one write transaction."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec
import pytest

from hub import audit
from hub.chain import catalogue
from hub.chain.catalogue import CatalogueDoc
from hub.chain.events import catalogue_version
from hub.domain.catalog import Product
from hub.domain.demo_catalogue import build_demo_store
from hub.sale.inventory import put_product
from hub.store.env import Store
from hub.store.keys import text


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data", map_size=64 << 20, durable=False)
    demo = build_demo_store(date(2026, 3, 14), home_jurisdiction="CA", id_hasher=lambda j, n: n)
    with s.env.begin(write=True) as txn:
        for p in demo.products:
            put_product(txn, s, p)
    return s


def doc(version: int, **kw: object) -> CatalogueDoc:
    return msgspec.convert({"chain": "green", "store": "north", "version": version, **kw}, CatalogueDoc)


def price(store: Store, pid: str) -> int:
    p = store.get("products", text(pid), Product)
    assert p is not None
    return p.price_cents


def apply(store: Store, d: CatalogueDoc) -> catalogue.Applied | None:
    with store.env.begin(write=True) as txn:
        return catalogue.apply(txn, store, d)


def test_newer_version_applies_once_older_or_same_is_ignored(store: Store) -> None:
    got = apply(store, doc(3, prices={"PRE-001": 1234, "NOT-SOLD-HERE": 99}))
    assert got is not None and [p.id for p in got.products] == ["PRE-001"]
    assert price(store, "PRE-001") == 1234 and catalogue_version(store) == 3
    assert apply(store, doc(3, prices={"PRE-001": 1})) is None  # a resend of the same version
    assert apply(store, doc(2, prices={"PRE-001": 1})) is None  # an older one, late
    assert price(store, "PRE-001") == 1234
    n, brk = audit.verify(store)
    assert brk is None and n == 1  # one audit entry: it ships to HQ, which sees the version each store runs


def test_a_bad_document_changes_nothing(store: Store) -> None:
    before = price(store, "PRE-001")
    with pytest.raises(msgspec.ValidationError):
        apply(store, doc(1, prices={"PRE-001": 500}, products=[{"id": "X-1", "name": "no category"}]))
    with pytest.raises(ValueError):
        apply(store, doc(1, prices={"PRE-001": -5}))
    assert price(store, "PRE-001") == before and catalogue_version(store) == 0


def test_promotions_from_hq_replace_the_stores_and_none_keeps_them(store: Store) -> None:
    got = apply(
        store,
        doc(
            1,
            promotions=[
                {
                    "kind": "category_percent",
                    "id": "p1",
                    "name": "10% off vapes",
                    "category": "vape",
                    "percent_bp": 1000,
                }
            ],
        ),
    )
    assert got is not None and got.promotions is not None and len(got.promotions) == 1
    got = apply(store, doc(2, prices={}))
    assert got is not None and got.promotions is None


def test_a_product_defined_at_hq_is_added_and_its_chain_price_applies(store: Store) -> None:
    pre = store.get("products", text("PRE-001"), Product)
    assert pre is not None
    new = msgspec.structs.replace(pre, id="HQ-PRE-900", name="House pre-roll", barcode="0123456789012")
    got = apply(store, doc(1, products=[msgspec.to_builtins(new)], prices={"HQ-PRE-900": 800}))
    assert got is not None and {p.id for p in got.products} == {"HQ-PRE-900"}
    stored = store.get("products", text("HQ-PRE-900"), Product)
    assert stored is not None and stored.name == "House pre-roll" and stored.price_cents == 800
    with store.read() as txn:  # found by its barcode at the register too
        assert bytes(txn.get(text("0123456789012"), db=store.db("product_barcodes"))) == b"HQ-PRE-900"
