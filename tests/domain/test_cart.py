from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.cart import (
    Cart,
    Change,
    ManagerOverride,
    ManualWeight,
    WeightReading,
    _per_gram,
    add_by_barcode,
    add_cart_discount,
    add_line_discount,
    add_package,
    cart_limit_items,
    new_cart,
    park,
    recall,
    redeem_points,
    remove_line,
    reweigh,
    set_customer,
    set_quantity,
)
from hub.domain.catalog import Package, Product, Refusal
from hub.domain.discounts import Discount, DiscountPolicy
from hub.domain.items import LimitAttributes
from hub.domain.tax import round_half_up

TODAY = date(2026, 3, 14)
NOW = datetime(2026, 3, 14, 18, 0, tzinfo=UTC)

GUMMIES = Product(
    id="EDI-1",
    name="Watermelon Gummies 100mg",
    brand="Kiva",
    category="edible",
    sold_by="each",
    price_cents=2000,
    barcode="850000000011",
    limits=LimitAttributes(category="edible", net_weight_mg=40_000, thc_mg=100),
)
BULK = Product(
    id="FLO-BULK",
    name="OG Kush (bulk)",
    brand="House",
    category="flower",
    sold_by="weight",
    price_cents=1000,  # $10.00 per gram
    limits=LimitAttributes(category="flower", net_weight_mg=1000, thc_mg=215),
)
PIPE = Product(
    id="ACC-1",
    name="Glass Pipe",
    brand="Generic",
    category="accessory",
    sold_by="each",
    price_cents=1500,
    tax_class="general",
    limits=LimitAttributes(category="accessory"),
)


def pkg(tag, product=GUMMIES, quantity=10, days_old=10, **kw):
    return Package(
        tag=tag,
        product_id=product.id,
        quantity=quantity,
        expires_on=TODAY + timedelta(days=100),
        received_at=NOW - timedelta(days=days_old),
        **kw,
    )


STABLE = WeightReading(weight_mg=3_512, stable=True, scale_id="scale-1", certificate="NTEP 12-345")


def ok(result) -> Change:
    assert isinstance(result, Change), result
    return result


def cart() -> Cart:
    return new_cart("c1", "reg-1", NOW)


def test_add_by_tag_then_again_merges_the_line_and_bumps_version():
    p = pkg("1A4000000000000000000001")
    c1 = ok(add_package(cart(), p, GUMMIES, TODAY, quantity=2)).cart
    c2 = ok(add_package(c1, p, GUMMIES, TODAY)).cart
    assert len(c2.lines) == 1 and c2.lines[0].quantity == 3
    assert c2.lines[0].package_tag == p.tag
    assert (c1.version, c2.version) == (1, 2)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"status": "on_hold"}, "on_hold"),
        ({"status": "quarantined"}, "quarantined"),
        ({"status": "finished"}, "finished"),
        ({"lab_testing": "failed"}, "lab_not_passed"),
        ({"lab_testing": "in_progress"}, "lab_not_passed"),
        ({"expires_on": TODAY - timedelta(days=1)}, "expired"),
    ],
)
def test_refusal_for_each_package_state_leaves_the_cart_unchanged(changes, code):
    base = dict(tag="1A4000000000000000000001", product_id=GUMMIES.id, quantity=5, received_at=NOW)
    base.update(changes)
    c = cart()
    result = add_package(c, Package(**base), GUMMIES, TODAY)
    assert isinstance(result, Refusal) and result.code == code
    assert c.lines == () and c.version == 0


def test_unknown_tag_refused():
    assert add_package(cart(), None, None, TODAY).code == "unknown_package"


def test_stock_counts_what_the_cart_already_holds():
    p = pkg("1A4000000000000000000001", quantity=3)
    c = ok(add_package(cart(), p, GUMMIES, TODAY, quantity=2)).cart
    refusal = add_package(c, p, GUMMIES, TODAY, quantity=2)
    assert refusal.code == "short" and "already in this cart" in refusal.message
    assert ok(add_package(c, p, GUMMIES, TODAY, quantity=1)).cart.lines[0].quantity == 3


def test_add_by_barcode_picks_oldest_sellable_package_and_says_which():
    old_hold = pkg("1A4000000000000000000001", days_old=90, status="on_hold")
    old = pkg("1A4000000000000000000002", days_old=60, quantity=1)
    newer = pkg("1A4000000000000000000003", days_old=5)
    packages = [newer, old_hold, old]
    ch = ok(add_by_barcode(cart(), GUMMIES, packages, TODAY))
    assert ch.cart.lines[0].package_tag == old.tag
    assert old.tag in ch.message and "oldest" in ch.message
    # the old package is now fully in the cart: the next scan moves on to the newer one
    ch2 = ok(add_by_barcode(ch.cart, GUMMIES, packages, TODAY))
    assert [ln.package_tag for ln in ch2.cart.lines] == [old.tag, newer.tag]


def test_add_by_barcode_when_nothing_is_sellable():
    r = add_by_barcode(cart(), GUMMIES, [pkg("1A4000000000000000000001", status="quarantined")], TODAY)
    assert r.code == "no_sellable_package" and "quarantined" in r.message
    assert add_by_barcode(cart(), GUMMIES, [], TODAY).code == "no_package"
    assert add_by_barcode(cart(), None, [], TODAY).code == "unknown_product"


def test_weighed_line_from_stable_reading():
    p = pkg("1A4000000000000000000009", product=BULK, quantity=28_000)
    ch = ok(add_package(cart(), p, BULK, TODAY, weight=STABLE))
    line = ch.cart.lines[0]
    assert (line.weight_mg, line.weight_source, line.scale_id, line.scale_certificate) == (
        3_512,
        "scale",
        "scale-1",
        "NTEP 12-345",
    )
    assert "3.512 g" in ch.message


def test_reading_in_motion_is_refused():
    p = pkg("1A4000000000000000000009", product=BULK, quantity=28_000)
    moving = WeightReading(weight_mg=3_512, stable=False, scale_id="scale-1", certificate="NTEP 12-345")
    assert add_package(cart(), p, BULK, TODAY, weight=moving).code == "scale_in_motion"
    assert add_package(cart(), p, BULK, TODAY).code == "weight_required"
    uncertified = WeightReading(weight_mg=3_512, stable=True, scale_id="scale-9")
    assert add_package(cart(), p, BULK, TODAY, weight=uncertified).code == "scale_not_certified"
    zero = WeightReading(weight_mg=0, stable=True, scale_id="scale-1", certificate="x")
    assert add_package(cart(), p, BULK, TODAY, weight=zero).code == "no_weight"


def test_unsellable_bulk_package_refused_before_asking_to_weigh():
    p = pkg("1A4000000000000000000009", product=BULK, quantity=28_000, status="on_hold")
    assert add_package(cart(), p, BULK, TODAY).code == "on_hold"


def test_typed_weight_needs_a_manager_override():
    p = pkg("1A4000000000000000000009", product=BULK, quantity=28_000)
    no_ref = ManualWeight(
        weight_mg=3_500, override=ManagerOverride(manager_id="m1", reason="scale down", reference="")
    )
    assert add_package(cart(), p, BULK, TODAY, weight=no_ref).code == "override_required"
    typed = ManualWeight(
        weight_mg=3_500, override=ManagerOverride(manager_id="m1", reason="scale down", reference="audit-77")
    )
    line = ok(add_package(cart(), p, BULK, TODAY, weight=typed)).cart.lines[0]
    assert line.weight_source == "manual" and line.override.reference == "audit-77"


def test_weight_short_by_one_milligram():
    p = pkg("1A4000000000000000000009", product=BULK, quantity=3_511)
    assert add_package(cart(), p, BULK, TODAY, weight=STABLE).code == "short"


def test_reweigh_replaces_the_weight_and_rechecks_stock():
    p = pkg("1A4000000000000000000009", product=BULK, quantity=5_000)
    c = ok(add_package(cart(), p, BULK, TODAY, weight=STABLE)).cart
    heavier = WeightReading(weight_mg=4_200, stable=True, scale_id="scale-1", certificate="NTEP 12-345")
    assert ok(reweigh(c, 1, heavier, p, BULK, TODAY)).cart.lines[0].weight_mg == 4_200
    too_much = WeightReading(weight_mg=5_001, stable=True, scale_id="scale-1", certificate="NTEP 12-345")
    assert reweigh(c, 1, too_much, p, BULK, TODAY).code == "short"
    moving = WeightReading(weight_mg=4_200, stable=False, scale_id="scale-1", certificate="NTEP 12-345")
    assert reweigh(c, 1, moving, p, BULK, TODAY).code == "scale_in_motion"


def test_set_quantity_and_remove():
    p = pkg("1A4000000000000000000001", quantity=4)
    c = ok(add_package(cart(), p, GUMMIES, TODAY)).cart
    assert ok(set_quantity(c, 1, 4, p, GUMMIES, TODAY)).cart.lines[0].quantity == 4
    assert set_quantity(c, 1, 5, p, GUMMIES, TODAY).code == "short"
    # the package went on hold since it was scanned
    held = msgspec.structs.replace(p, status="on_hold")
    assert set_quantity(c, 1, 2, held, GUMMIES, TODAY).code == "on_hold"
    assert ok(set_quantity(c, 1, 0, p, GUMMIES, TODAY)).cart.lines == ()
    assert set_quantity(c, 9, 1, p, GUMMIES, TODAY).code == "line_not_found"
    assert ok(remove_line(c, 1)).cart.lines == ()
    assert remove_line(c, 9).code == "line_not_found"


def test_set_quantity_refused_on_weighed_line():
    p = pkg("1A4000000000000000000009", product=BULK, quantity=28_000)
    c = ok(add_package(cart(), p, BULK, TODAY, weight=STABLE)).cart
    assert set_quantity(c, 1, 2, p, BULK, TODAY).code == "weighed_line"


def test_park_and_recall():
    p = pkg("1A4000000000000000000001")
    assert park(cart(), NOW).code == "cart_empty"
    c = ok(add_package(cart(), p, GUMMIES, TODAY)).cart
    parked = ok(park(c, NOW)).cart
    assert parked.status == "parked"
    assert add_package(parked, p, GUMMIES, TODAY).code == "cart_parked"
    assert remove_line(parked, 1).code == "cart_parked"
    assert park(parked, NOW).code == "cart_parked"
    back = ok(recall(parked)).cart
    assert back.status == "open" and back.lines == c.lines
    assert recall(back).code == "not_parked"


def test_cart_round_trips_through_msgpack():
    p = pkg("1A4000000000000000000009", product=BULK, quantity=28_000)
    c = ok(add_package(cart(), p, BULK, TODAY, weight=STABLE)).cart
    c = ok(
        add_line_discount(
            c, 1, Discount(kind="percent", value=500, reason="vet"), role="budtender", policy=DiscountPolicy()
        )
    ).cart
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(c), type=Cart) == c


def test_discount_beyond_role_threshold_needs_manager():
    p = pkg("1A4000000000000000000001")
    c = ok(add_package(cart(), p, GUMMIES, TODAY)).cart  # $20.00
    policy = DiscountPolicy()
    ten = Discount(kind="percent", value=1000, reason="veteran")
    assert isinstance(add_line_discount(c, 1, ten, role="budtender", policy=policy), Change)
    eleven = Discount(kind="percent", value=1100, reason="friend")
    assert add_line_discount(c, 1, eleven, role="budtender", policy=policy).code == "override_required"
    # $2.01 off $20.00 is 10.05 %: over a budtender's 10 %
    fixed = Discount(kind="fixed", value=201, reason="damaged box")
    assert add_line_discount(c, 1, fixed, role="budtender", policy=policy).code == "override_required"
    approved = Discount(kind="fixed", value=201, reason="damaged box", override_ref="audit-9")
    assert isinstance(add_line_discount(c, 1, approved, role="budtender", policy=policy), Change)
    assert isinstance(add_line_discount(c, 1, eleven, role="manager", policy=policy), Change)
    assert add_cart_discount(c, eleven, role="budtender", policy=policy).code == "override_required"
    assert (
        add_line_discount(
            c, 1, Discount(kind="percent", value=100, reason=" "), role="manager", policy=policy
        ).code
        == "reason_required"
    )


def test_customer_and_points():
    p = pkg("1A4000000000000000000001")
    assert redeem_points(cart(), 100, 500).code == "no_customer"
    c = ok(set_customer(cart(), "cust-1")).cart
    c = ok(add_package(c, p, GUMMIES, TODAY)).cart
    assert redeem_points(c, 600, 500).code == "not_enough_points"
    assert ok(redeem_points(c, 500, 500)).cart.loyalty_points_to_redeem == 500
    assert set_customer(c, "cust-2").code == "customer_change"


def test_limit_items_scale_weighed_lines_and_skip_accessories():
    g = pkg("1A4000000000000000000001")
    b = pkg("1A4000000000000000000009", product=BULK, quantity=28_000)
    a = pkg("1A4000000000000000000005", product=PIPE)
    c = ok(add_package(cart(), g, GUMMIES, TODAY, quantity=3)).cart
    c = ok(add_package(c, b, BULK, TODAY, weight=STABLE)).cart
    c = ok(add_package(c, a, PIPE, TODAY)).cart
    items = cart_limit_items(c)
    assert items[0] == (GUMMIES.limits, 3)
    attrs, n = items[1]
    assert n == 1 and attrs.net_weight_mg == 3_512 and attrs.category == "flower"
    assert attrs.thc_mg == 756  # 215 mg/g × 3.512 g = 755.08 → rounded up, never under-counted
    assert len(items) == 2


_PKGS = [pkg(f"1A40000000000000000000{i:02d}", quantity=q) for i, q in enumerate((1, 3, 5))]
_BULK = pkg("1A4000000000000000000099", product=BULK, quantity=5_000)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(0, 2), st.integers(1, 4)),
            st.tuples(st.just("barcode"), st.integers(0, 0), st.integers(1, 3)),
            st.tuples(st.just("set"), st.integers(1, 6), st.integers(0, 6)),
            st.tuples(st.just("remove"), st.integers(1, 6), st.integers(0, 0)),
            st.tuples(st.just("weigh"), st.integers(0, 0), st.integers(1, 3_000)),
            st.tuples(st.just("reweigh"), st.integers(1, 6), st.integers(1, 6_000)),
        ),
        max_size=25,
    )
)
def test_no_sequence_of_transitions_oversells_a_package(ops):
    by_tag = {p.tag: p for p in [*_PKGS, _BULK]}
    c = cart()
    for op, a, b in ops:
        if op == "add":
            r = add_package(c, _PKGS[a], GUMMIES, TODAY, quantity=b)
        elif op == "barcode":
            r = add_by_barcode(c, GUMMIES, _PKGS, TODAY, quantity=b)
        elif op == "set":
            line = c.line(a)
            r = set_quantity(c, a, b, by_tag.get(line.package_tag) if line else None, GUMMIES, TODAY)
        elif op == "remove":
            r = remove_line(c, a)
        elif op == "weigh":
            r = add_package(c, _BULK, BULK, TODAY, weight=msgspec.structs.replace(STABLE, weight_mg=b))
        else:
            r = reweigh(c, a, msgspec.structs.replace(STABLE, weight_mg=b), _BULK, BULK, TODAY)
        if isinstance(r, Change):
            assert r.cart.version == c.version + 1
            c = r.cart
        else:
            assert isinstance(r, Refusal) and r.code and r.message
        for tag, p in by_tag.items():
            assert c.held_of(tag) <= p.quantity
        assert len({ln.line_id for ln in c.lines}) == len(c.lines)
        assert all(ln.quantity >= 1 for ln in c.lines)


def test_fifo_compares_instants_across_offsets():
    from datetime import timezone

    # 09:00 at -05:00 is 14:00 UTC: later than 13:00 UTC although its wall-clock reads earlier
    later = pkg("1A4000000000000000000001")
    later = msgspec.structs.replace(
        later, received_at=datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    )
    earlier = msgspec.structs.replace(
        pkg("1A4000000000000000000002"), received_at=datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    )
    assert (
        ok(add_by_barcode(cart(), GUMMIES, [later, earlier], TODAY)).cart.lines[0].package_tag == earlier.tag
    )


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_a_weighed_lines_price_rounds_exactly_as_the_tax_rounding_does(cents_times_mg: int) -> None:
    """The integer per-gram rounding of line_base_cents agrees with tax.round_half_up over Fractions
    (halves away from zero), at every value, halves included."""
    for n in (cents_times_mg, cents_times_mg - cents_times_mg % 1000 + 500):
        assert _per_gram(n) == round_half_up(Fraction(n, 1000))
