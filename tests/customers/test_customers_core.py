"""The customer, loyalty, promotion and CRM cores with values: consent rules, phone numbers, merging,
retention, loyalty tiers and exclusions, the new promotion kinds and codes, the CRM shapes and signature
(the Alpine IQ-style shape against the vendor's documented example)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec

from hub.domain import customers as core
from hub.domain.cart import Cart, CartLine
from hub.domain.catalog import Customer, Refusal
from hub.domain.crm import (
    SCHEMA,
    CrmCustomer,
    CrmEvent,
    CrmLine,
    CrmSale,
    alpineiq_style,
    request_for,
    springbig_style,
)
from hub.domain.items import LimitAttributes
from hub.domain.loyalty import BirthdayOffer, LoyaltyProgram, Tier, book, groups_of, policy_for, problems
from hub.domain.pricing import price_cart
from hub.domain.promotions import AmountOff, Bundle, CategoryPercent, apply_promotions, eligible
from hub.domain.promotions import problems as promo_problems
from hub.domain.tax import TaxTable

NOW = datetime(2026, 5, 1, 18, 0, tzinfo=UTC)
KEY = b"k" * 32
FACTS = core.LicenceFacts(
    id_hash="h" * 64,
    given_name="ALEXIS",
    family_name="MORENO",
    birth_date=date(1990, 5, 3),
    expires_on=date(2030, 1, 1),
    jurisdiction="CA",
)
NO_TAX = TaxTable(name="none", prices_include_tax=False, rules=())


def enrolled(**form: object) -> Customer:
    c = core.enrol(
        FACTS,
        core.EnrolForm(consent_profile=True, **form),
        key=KEY,
        staff="ana",
        where="R1",
        now=NOW,
        new_id="c1",
    )  # type: ignore[arg-type]
    assert isinstance(c, Customer)
    return c


def test_contact_details_only_with_consent() -> None:
    c = enrolled(phone="916 555 0142", email="A@Example.COM")
    assert c.phone == "" and c.email == "" and c.phone_hash == core.phone_hash(KEY, "+19165550142")
    assert not core.may_text(c)
    c = enrolled(phone="916 555 0142", email="A@Example.COM", consent_sms=True)
    assert c.phone == "+19165550142" and c.email == "" and core.may_text(c) and not core.may_email(c)
    c = enrolled(email="A@Example.COM", consent_marketing=True)
    assert c.email == "A@example.com" and core.may_email(c)
    refused = core.enrol(
        FACTS,
        core.EnrolForm(consent_sms=True, phone="9165550142"),
        key=KEY,
        staff="a",
        where="R1",
        now=NOW,
        new_id="x",
    )
    assert isinstance(refused, Refusal) and refused.code == "no_consent"
    assert isinstance(
        core.enrol(
            FACTS,
            core.EnrolForm(consent_profile=True, consent_sms=True),
            key=KEY,
            staff="a",
            where="R1",
            now=NOW,
            new_id="x",
        ),
        Refusal,
    )


def test_a_withdrawn_consent_drops_what_it_covered() -> None:
    c = enrolled(phone="9165550142", consent_sms=True)
    later = core.change_consent(c, "sms", False, staff="ana", where="R1", now=NOW + timedelta(days=1))
    assert later.phone == "" and not core.may_text(later)
    assert [x.granted for x in later.consents if x.kind == "sms"] == [True, False]


def test_phone_numbers() -> None:
    assert core.normalize_phone("(916) 555-0142") == "+19165550142"
    assert core.normalize_phone("1-916-555-0142") == "+19165550142"
    assert core.normalize_phone("+44 20 7946 0958") == "+442079460958"
    assert isinstance(core.normalize_phone("555-0142"), Refusal)


def test_merge_adds_up_and_refuses_two_people() -> None:
    a = msgspec.structs.replace(enrolled(), loyalty_points=100, lifetime_points=500)
    later = core.enrol(
        FACTS,
        core.EnrolForm(consent_profile=True, phone="9165550142", consent_sms=True),
        key=KEY,
        staff="ana",
        where="R2",
        now=NOW + timedelta(hours=1),
        new_id="c2",
    )
    assert isinstance(later, Customer)
    b = msgspec.structs.replace(later, loyalty_points=40, lifetime_points=40)
    merged, gone = core.merge(a, b, staff="maria", now=NOW)  # type: ignore[misc]
    assert merged.loyalty_points == 140 and merged.lifetime_points == 540 and merged.phone == "+19165550142"
    assert gone.merged_into == "c1" and gone.loyalty_points == 0 and gone.phone == ""
    other = msgspec.structs.replace(b, birth_date=date(1991, 1, 1))
    r = core.merge(a, other, staff="maria", now=NOW)
    assert isinstance(r, Refusal) and r.code == "different_people"


def test_retention_period() -> None:
    c = msgspec.structs.replace(
        enrolled(), enrolled_at=NOW - timedelta(days=900), last_visit_at=NOW - timedelta(days=731)
    )
    assert core.due_for_purge(c, profile_days=730, now=NOW)
    assert not core.due_for_purge(c, profile_days=732, now=NOW)
    assert not core.due_for_purge(
        msgspec.structs.replace(c, enrolled_at=None, last_visit_at=None), profile_days=1, now=NOW
    )


def line(i: int, category: str, price: int, qty: int = 1, product: str = "") -> CartLine:
    return CartLine(
        line_id=i,
        package_tag=f"T{i}",
        product_id=product or f"P{i}",
        product_name=f"P{i}",
        brand="B",
        category=category,
        sold_by="each",
        tax_class="cannabis",
        is_cannabis=category != "accessory",
        unit_price_cents=price,
        limits=LimitAttributes(category=category),
        quantity=qty,
    )


def test_loyalty_program_checked_at_load() -> None:
    assert problems(LoyaltyProgram()) == []
    bad = LoyaltyProgram(
        excluded_categories=("flowers",),
        tiers=(Tier(name="Gold", min_lifetime_points=500), Tier(name="Silver", min_lifetime_points=100)),
    )
    msgs = problems(bad)
    assert any("flowers" in m for m in msgs) and any("go up" in m for m in msgs)
    from hub.config import ConfigError, parse_config
    from tests.conftest import TEST_TOML

    try:
        parse_config(TEST_TOML + '\n[loyalty]\npoints_per_dollar = 1\nexcluded_categories = ["flowerz"]\n')
        raise AssertionError("a bad loyalty program was accepted")
    except ConfigError as exc:
        assert "loyalty" in str(exc) and "flowerz" in str(exc)


def test_tiers_birthday_and_excluded_categories() -> None:
    program = LoyaltyProgram(
        points_per_dollar=1,
        excluded_categories=("flower",),
        tiers=(Tier(name="Silver", min_lifetime_points=100, multiplier_bp=15000),),
        birthday=BirthdayOffer(multiplier_bp=20000, days_before=2, days_after=2),
    )
    c = msgspec.structs.replace(enrolled(), lifetime_points=150, loyalty_points=1000)
    cart = Cart(
        cart_id="c",
        register_id="R1",
        customer_id="c1",
        lines=(line(1, "flower", 5000), line(2, "accessory", 2000)),
        loyalty_points_to_redeem=800,
    )
    far = date(2026, 9, 1)
    priced = price_cart(
        cart, NO_TAX, local_now=NOW, loyalty=policy_for(program, c, far), available_points=1000
    )
    # redemption only on the accessory ($20 of room less its floor of 0), earning only on it too
    assert priced.lines[0].loyalty_cents == 0 and priced.lines[1].loyalty_cents == 800
    assert priced.loyalty_points_earned == (1200 // 100) * 15000 // 10000  # $12 paid on the accessory x 1.5
    birthday = price_cart(
        cart, NO_TAX, local_now=NOW, loyalty=policy_for(program, c, date(2026, 5, 4)), available_points=0
    )
    assert birthday.loyalty_points_earned == 20 * 3  # $20 x 1.5 (tier) x 2 (birthday)
    assert "Silver" in groups_of(program, c) and "medical" in groups_of(program, c, "medical")
    updated, entries = book(c, redeemed=800, earned=18, at=NOW, receipt_number=7, staff="ana")  # type: ignore[misc]
    assert (
        updated.loyalty_points == 218
        and [e.delta for e in entries] == [-800, 18]
        and entries[-1].balance == 218
    )
    assert book(c, redeemed=1001, earned=0, at=NOW, receipt_number=8, staff="ana") is None


def test_amount_off_bundle_codes_and_groups() -> None:
    lines = [line(1, "pre-roll", 1200, 2), line(2, "pre-roll", 1500, 1), line(3, "edible", 2000)]
    bases = {ln.line_id: ln.unit_price_cents * ln.quantity for ln in lines}
    bundle = Bundle(
        id="3for30", name="3 pre-rolls $30", quantity=3, price_cents=3000, categories=("pre-roll",)
    )
    got = apply_promotions(lines, bases, [bundle], NOW)
    assert sum(a.amount_cents for a in got.values()) == 1200 + 1200 + 1500 - 3000
    off = AmountOff(id="2off", name="$2 off edibles", amount_cents=200, categories=("edible",), code="SWEET")
    assert eligible([off], codes=()) == [] and eligible([off], codes=["sweet"]) == [off]
    vets = CategoryPercent(
        id="vet", name="Veterans 10%", category="edible", percent_bp=1000, customer_groups=("veteran",)
    )
    assert eligible([vets], groups=["senior"]) == [] and eligible([vets], groups=["veteran"]) == [vets]
    assert apply_promotions(lines, bases, [off], NOW)[3].amount_cents == 200
    assert promo_problems(Bundle(id="b", name="b", quantity=1, price_cents=0))


def _event() -> CrmEvent:
    return CrmEvent(
        schema=SCHEMA,
        event_id="L:sale:42",
        type="sale.completed",
        occurred_at="2026-05-01T18:00:00Z",
        store={"licence": "L", "name": "S"},
        sale=CrmSale(
            receipt_number=42,
            sold_at="2026-05-01T18:00:00Z",
            customer_id="c1",
            subtotal_cents=4000,
            discount_cents=0,
            tax_cents=500,
            total_cents=4500,
            points_earned=40,
            points_redeemed=0,
            lines=[
                CrmLine(
                    product_id="PRE-001",
                    name="Blue Dream Pre-Roll",
                    brand="B",
                    category="pre-roll",
                    quantity=1,
                    weight_mg=0,
                    total_cents=4500,
                )
            ],
        ),
    )


def test_crm_alpineiq_style_matches_the_documented_example() -> None:
    doc = json.loads((Path(__file__).parent / "fixtures" / "alpineiq_createUpdateSale.json").read_text())[
        "example"
    ]
    path, ours = alpineiq_style(_event())
    assert path == "/createUpdateSale"
    assert set(ours) == set(doc) and set(ours["visit"]) == set(doc["visit"])
    doc_line = set(doc["visit"]["visit_details_attributes"][0]) - {"discount"}
    assert doc_line <= set(ours["visit"]["visit_details_attributes"][0])
    assert ours["visit"]["transaction_date"] == "2026-05-01 18:00:00 +0000"  # the documented form
    assert ours["visit"]["transaction_total"] == 45.0
    sb_path, sb = springbig_style(_event())
    assert sb_path == "/visits" and sb["visit"]["pos_user"] == "c1"
    member_path, member = springbig_style(
        msgspec.structs.replace(
            _event(),
            type="customer.upserted",
            sale=None,
            customer=CrmCustomer(
                id="c1",
                first_name="A",
                last_name="M",
                birth_date="1990-05-03",
                phone="",
                email="a@example.com",
                consents={"marketing": True, "sms": False},
                points=1,
                lifetime_points=1,
                groups=[],
            ),
        )
    )
    assert member_path == "/members" and member["member"]["opt_in_sms"] is False


def test_crm_signature_is_hmac_of_timestamp_and_body() -> None:
    req = request_for(_event(), style="generic", secret="s3cret", now=1_777_000_000.7)
    ts = req.headers["x-storehub-timestamp"]
    assert ts == "1777000000"
    want = hmac.new(b"s3cret", ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-storehub-signature"] == "sha256=" + want
    assert req.headers["idempotency-key"] == req.headers["x-storehub-event"] == "L:sale:42"
    assert json.loads(req.body)["schema"] == "storehub.crm.v1"
