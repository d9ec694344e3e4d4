from datetime import UTC, datetime
from fractions import Fraction

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.cart import CartLine, new_cart
from hub.domain.discounts import Discount
from hub.domain.items import LimitAttributes
from hub.domain.pricing import LoyaltyPolicy, allocate, price_cart
from hub.domain.promotions import BuyNGetOne, CategoryPercent, TimeWindow
from hub.domain.tax import TaxRule, TaxTable, div_half_up, format_rate, round_half_up, tax_line

NOW = datetime(2026, 3, 13, 17, 0)  # a Friday, 17:00 store-local
EXCISE = TaxRule(
    code="excise", name="Cannabis excise 10%", rate_ppm=100_000, applies_to=("cannabis",), kind="excise"
)
STATE = TaxRule(code="state", name="Sales tax 6%", rate_ppm=60_000, applies_to=("cannabis", "general"))
MI = TaxTable(rules=(EXCISE, STATE))
MI_INCLUSIVE = TaxTable(rules=(EXCISE, STATE), prices_include_tax=True)


def line(
    line_id, price, qty=1, category="edible", sold_by="each", weight_mg=0, discounts=(), tax_class="cannabis"
):
    return CartLine(
        line_id=line_id,
        package_tag=f"1A40000000000000000000{line_id:02d}",
        product_id=f"P{line_id}",
        product_name=f"Product {line_id}",
        brand="B",
        category=category,
        sold_by=sold_by,
        tax_class=tax_class,
        is_cannabis=category != "accessory",
        unit_price_cents=price,
        limits=LimitAttributes(category=category),
        quantity=qty,
        weight_mg=weight_mg,
        discounts=tuple(discounts),
    )


def cart(*lines, cart_discounts=(), points=0, customer=""):
    c = new_cart("c", "r", NOW.replace(tzinfo=UTC), customer_id=customer)
    return msgspec.structs.replace(
        c, lines=tuple(lines), cart_discounts=tuple(cart_discounts), loyalty_points_to_redeem=points
    )


@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=1, max_value=10**7))
def test_integer_rounding_is_round_half_up(numerator: int, denominator: int) -> None:
    """div_half_up (integers, used for taxes, discounts and promotions) rounds every quotient exactly as
    round_half_up rounds the Fraction, halves included (both signs)."""
    half = numerator - numerator % denominator + denominator // 2  # a half when the denominator is even
    for n in (numerator, half, -half):
        assert div_half_up(n, denominator) == round_half_up(Fraction(n, denominator))


def test_round_half_up_not_bankers():
    assert round_half_up(Fraction(1005, 10)) == 101  # round() would give 100
    assert round_half_up(Fraction(1025, 10)) == 103
    assert round_half_up(Fraction(1024, 10)) == 102
    assert round_half_up(Fraction(-1005, 10)) == -101  # a refund mirrors its sale


def test_exclusive_taxes_each_listed_cent_exact():
    priced = price_cart(cart(line(1, 3500)), MI, local_now=NOW)
    assert [(t.code, t.amount_cents) for t in priced.taxes] == [("excise", 350), ("state", 210)]
    assert (priced.pretax_cents, priced.tax_cents, priced.total_cents) == (3500, 560, 4060)
    assert "rounded half up" in priced.rounding_note


def test_per_line_rounding_half_up():
    # 10 % of $10.05 = 100.5 cents -> 101 on each line; per-receipt rounding would give 201, not 202
    priced = price_cart(cart(line(1, 1005), line(2, 1005)), MI, local_now=NOW)
    assert priced.taxes[0].amount_cents == 202
    assert [ln.taxes[0].amount_cents for ln in priced.lines] == [101, 101]
    # 6 % of 1005 = 60.3 -> 60
    assert priced.taxes[1].amount_cents == 120


def test_inclusive_prices_back_out_taxes_and_parts_add_up():
    priced = price_cart(cart(line(1, 5000)), MI_INCLUSIVE, local_now=NOW)
    # 5000 × 0.10 / 1.16 = 431.03 -> 431 ; 5000 × 0.06 / 1.16 = 258.62 -> 259
    assert [t.amount_cents for t in priced.taxes] == [431, 259]
    assert priced.pretax_cents == 4310
    assert priced.total_cents == 5000
    assert "include tax" in priced.rounding_note


def test_compounding_tax_on_top_of_excise():
    excise = TaxRule(code="excise", name="Excise 15%", rate_ppm=150_000, applies_to=("cannabis",))
    sales = TaxRule(
        code="sales", name="Sales 9.5%", rate_ppm=95_000, applies_to=("cannabis",), compounds=True
    )
    lt = tax_line(1000, "cannabis", TaxTable(rules=(excise, sales)))
    # 150 excise; 9.5 % of 1150 = 109.25 -> 109
    assert [t.amount_cents for t in lt.taxes] == [150, 109] and lt.total_cents == 1259
    inc = tax_line(1259, "cannabis", TaxTable(rules=(excise, sales), prices_include_tax=True))
    assert inc.pretax_cents + inc.tax_cents == 1259 and inc.pretax_cents == 1000


def test_tax_classes_select_rules():
    priced = price_cart(cart(line(1, 1500, category="accessory", tax_class="general")), MI, local_now=NOW)
    assert [t.code for t in priced.taxes] == ["state"] and priced.tax_cents == 90


def test_weighed_line_base_rounds_half_up():
    # $10.05/g × 3.5 g = 3517.5 cents -> 3518
    priced = price_cart(
        cart(line(1, 1005, category="flower", sold_by="weight", weight_mg=3500)), MI, local_now=NOW
    )
    assert priced.lines[0].base_cents == 3518


def test_line_discounts_percent_then_fixed():
    d1 = Discount(kind="percent", value=1000, reason="senior")
    d2 = Discount(kind="fixed", value=150, reason="damaged")
    priced = price_cart(cart(line(1, 2000, discounts=[d1, d2])), MI, local_now=NOW)
    # each discount is computed on the line after promotions: 10 % of 2000 = 200, plus 150
    assert priced.lines[0].line_discount_cents == 350 and priced.net_cents == 1650


def test_cannabis_line_never_below_one_cent_per_unit():
    free = Discount(kind="percent", value=10_000, reason="comp", override_ref="a1")
    priced = price_cart(cart(line(1, 2000, qty=3, discounts=[free])), MI, local_now=NOW)
    assert priced.lines[0].price_cents == 3 and priced.lines[0].floor_applied
    assert priced.lines[0].line_discount_cents == 5997  # the clipped amount is what is recorded
    weighed = line(2, 1000, category="flower", sold_by="weight", weight_mg=1000, discounts=[free])
    assert price_cart(cart(weighed), MI, local_now=NOW).lines[0].price_cents == 1
    accessory = line(3, 1500, category="accessory", tax_class="general", discounts=[free])
    assert price_cart(cart(accessory), MI, local_now=NOW).lines[0].price_cents == 0


def test_cart_discount_spread_and_floored():
    ten = Discount(kind="fixed", value=1000, reason="welcome")
    priced = price_cart(cart(line(1, 3000), line(2, 1000), cart_discounts=[ten]), MI, local_now=NOW)
    assert [ln.cart_discount_cents for ln in priced.lines] == [750, 250]
    assert priced.discount_cents == 1000 and priced.net_cents == 3000
    huge = Discount(kind="fixed", value=50_000, reason="x", override_ref="a")
    priced = price_cart(cart(line(1, 2000), line(2, 1000, qty=2), cart_discounts=[huge]), MI, local_now=NOW)
    assert [ln.price_cents for ln in priced.lines] == [1, 2]


def test_category_promotion_in_its_time_window_only():
    happy = CategoryPercent(
        id="hh",
        name="Happy hour 20% edibles",
        category="edible",
        percent_bp=2000,
        window=TimeWindow(weekdays=(0, 1, 2, 3, 4), from_minute=16 * 60, to_minute=18 * 60),
    )
    c = cart(line(1, 2000), line(2, 3000, category="flower"))
    priced = price_cart(c, MI, local_now=NOW, promotions=[happy])
    assert (
        priced.lines[0].promotion_cents == 400 and priced.lines[0].promotion.name == "Happy hour 20% edibles"
    )
    assert priced.lines[1].promotion_cents == 0
    assert price_cart(c, MI, local_now=NOW.replace(hour=18), promotions=[happy]).promotion_cents == 0
    assert price_cart(c, MI, local_now=datetime(2026, 3, 14, 17, 0), promotions=[happy]).promotion_cents == 0


def test_buy_two_get_one_discounts_the_cheapest_unit_to_the_floor():
    bogo = BuyNGetOne(id="b2g1", name="Buy 2 pre-rolls get 1", buy=2, category="pre-roll")
    c = cart(line(1, 1200, qty=2, category="pre-roll"), line(2, 800, category="pre-roll"))
    priced = price_cart(c, MI, local_now=NOW, promotions=[bogo])
    # the $8 unit is free, and the floor makes it one cent
    assert priced.lines[1].promotion_cents == 799 and priced.lines[1].price_cents == 1
    assert priced.lines[0].promotion_cents == 0
    # 5 units: only one complete group of 3
    c5 = cart(line(1, 1000, qty=5, category="pre-roll"))
    assert price_cart(c5, MI, local_now=NOW, promotions=[bogo]).lines[0].promotion_cents == 1000


def test_promotions_do_not_stack_first_listed_wins():
    a = CategoryPercent(id="a", name="A", category="edible", percent_bp=1000)
    b = CategoryPercent(id="b", name="B", category="edible", percent_bp=5000)
    priced = price_cart(cart(line(1, 2000)), MI, local_now=NOW, promotions=[a, b])
    assert priced.lines[0].promotion.promotion_id == "a" and priced.promotion_cents == 200


def test_loyalty_redeem_and_earn():
    policy = LoyaltyPolicy(points_per_dollar=1, cents_per_point=1, min_redeem_points=100)
    c = cart(line(1, 3000), points=500, customer="cust")
    priced = price_cart(c, MI, local_now=NOW, loyalty=policy, available_points=400)
    assert priced.loyalty_points_redeemed == 400 and priced.loyalty_cents == 400
    assert priced.net_cents == 2600 and priced.loyalty_points_earned == 26
    # below the minimum: nothing redeemed
    assert price_cart(c, MI, local_now=NOW, loyalty=policy, available_points=99).loyalty_cents == 0
    # never burn more points than the cart can absorb
    small = cart(line(1, 150), points=500, customer="cust")
    p = price_cart(small, MI, local_now=NOW, loyalty=policy, available_points=500)
    assert p.loyalty_points_redeemed == 149 and p.net_cents == 1


def test_format_rate():
    assert (
        format_rate(72_500) == "7.25%" and format_rate(100_000) == "10%" and format_rate(93_750) == "9.375%"
    )


@given(st.integers(0, 10**7), st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_allocate_never_exceeds_capacity_and_sums(total, caps):
    total = min(total, sum(caps))
    shares = allocate(total, caps)
    assert sum(shares) == total
    assert all(0 <= s <= c for s, c in zip(shares, caps, strict=True))


@given(
    st.lists(
        st.tuples(st.integers(1, 50_000), st.integers(1, 5), st.integers(0, 10_000)), min_size=1, max_size=6
    ),
    st.integers(0, 200_000),
    st.booleans(),
)
def test_priced_cart_invariants(specs, cart_off, inclusive):
    lines = [
        line(
            i + 1, price, qty=qty, discounts=[Discount(kind="percent", value=pct, reason="r")] if pct else []
        )
        for i, (price, qty, pct) in enumerate(specs)
    ]
    cart_d = [Discount(kind="fixed", value=cart_off, reason="r")] if cart_off else []
    table = MI_INCLUSIVE if inclusive else MI
    priced = price_cart(cart(*lines, cart_discounts=cart_d), table, local_now=NOW)
    for pl, ln in zip(priced.lines, lines, strict=True):
        assert pl.price_cents >= ln.quantity  # one cent per unit
        assert pl.base_cents - pl.discount_cents == pl.price_cents
        assert pl.pretax_cents + sum(t.amount_cents for t in pl.taxes) == pl.total_cents
    assert priced.total_cents == sum(p.total_cents for p in priced.lines)
    assert priced.pretax_cents + priced.tax_cents == priced.total_cents
    assert priced.subtotal_cents - priced.total_discount_cents == priced.net_cents


@given(st.integers(0, 10**7), st.booleans())
def test_refund_tax_mirrors_sale_tax(cents, inclusive):
    table = MI_INCLUSIVE if inclusive else MI
    sale, refund = tax_line(cents, "cannabis", table), tax_line(-cents, "cannabis", table)
    assert [t.amount_cents for t in refund.taxes] == [-t.amount_cents for t in sale.taxes]
