"""The demo store: a catalogue, an inventory of state-tagged packages and demo customers with the PDF417
payloads of their licences, for ``storehub demo`` and for tests.

Deterministic: the same ``seed`` and ``today`` always give the same store. Dates are relative to ``today``
so an expired package stays expired and an adult stays an adult whenever the demo is built. The
product rows live in ``demo/catalogue.json`` and the people in ``demo/customers.json`` (data, not code).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any

import msgspec

from hub.domain.catalog import Customer, Package, Product
from hub.domain.items import LimitAttributes

DEFAULT_SEED = 420

# AAMVA issuer identification numbers (IIN) of the jurisdictions the demo may be set in.
IIN: dict[str, str] = {
    "AZ": "636026",
    "CA": "636014",
    "CO": "636020",
    "IL": "636035",
    "MA": "636002",
    "MI": "636032",
    "NJ": "636036",
    "NV": "636049",
    "NY": "636001",
    "OH": "636023",
    "OR": "636029",
    "WA": "636045",
    "WI": "636031",
}
_AWAY = {"WI": "MI"}  # the non-resident's state: WI unless the store is in WI

LOCATIONS = ("Sales floor – case 1", "Sales floor – case 2", "Vault A", "Vault B", "Back stock")

# Packages forced into each refusal state so the demo (and its tests) can always show every reason.
SCENARIOS = ("on_hold", "quarantined", "expired", "lab_failed", "lab_pending", "finished", "last_unit")


class DemoCustomer(msgspec.Struct, frozen=True, kw_only=True):
    role: str  # adult, non_resident, medical, expired_id, under_21, turns_21_today, ...
    customer: Customer
    id_scan: str  # the AAMVA PDF417 payload a scanner would deliver for this person's licence
    given_name: str
    family_name: str


class DemoStore(msgspec.Struct, frozen=True, kw_only=True):
    products: tuple[Product, ...]
    packages: tuple[Package, ...]
    customers: tuple[DemoCustomer, ...]
    scenarios: dict[str, str]  # scenario name -> package tag (see SCENARIOS)
    home_jurisdiction: str

    def customer(self, role: str) -> DemoCustomer:
        for c in self.customers:
            if c.role == role:
                return c
        raise KeyError(role)


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("hub.domain.demo").joinpath(name).read_text("utf-8"))
    return data


def _product(row: dict[str, Any]) -> Product:
    category = row["category"]
    net = row["net_weight_mg"]
    # THC for limits: a dosed product declares mg per unit; otherwise potency × weight (per gram for bulk).
    thc = row["thc_mg_per_unit"] or -(-net * row["thc_bp"] // 10_000)  # rounded up, never under-counted
    limits = LimitAttributes(
        category=category,
        net_weight_mg=net,
        concentrate_mg=row["concentrate_mg"],
        thc_mg=thc,
        volume_ul=row["volume_ul"],
    )
    lab = row["brand"].upper().replace("&", "").replace(" ", "")[:4]
    return Product(
        id=row["id"],
        name=row["name"],
        brand=row["brand"],
        category=category,
        sold_by=row["sold_by"],
        price_cents=row["price_cents"],
        limits=limits,
        strain=row["strain"],
        strain_type=row["strain_type"],
        tax_class=row["tax_class"],
        barcode=row["barcode"],
        thc_bp=row["thc_bp"],
        cbd_bp=row["cbd_bp"],
        thc_mg_per_unit=row["thc_mg_per_unit"],
        cbd_mg_per_unit=row["cbd_mg_per_unit"],
        coa_ref=f"COA-{lab}-{row['id']}",
    )


def demo_products() -> tuple[Product, ...]:
    return tuple(_product(row) for row in _load("catalogue.json")["products"])


def metrc_tag(facility: str, sequence: int) -> str:
    """A production-shaped Metrc label: ``1A4`` + 8 hex digits of the facility + a 13-digit sequence."""
    tag = f"1A4{facility}{sequence:013d}"
    assert len(tag) == 24, tag
    return tag


def _facility(brand: str) -> str:
    return hashlib.sha256(brand.encode()).hexdigest()[:8].upper()


def _packages(
    products: tuple[Product, ...], rng: random.Random, today: date
) -> tuple[list[Package], dict[str, str]]:
    packages: list[Package] = []
    sequences: dict[str, int] = {}
    for product in products:
        facility = _facility(product.brand)
        for _ in range(rng.randint(3, 7)):
            seq = sequences.get(facility, rng.randint(100_000, 900_000)) + rng.randint(1, 40)
            sequences[facility] = seq
            if product.sold_by == "weight":
                quantity = rng.choice((113_398, 226_796, 453_592))  # 4 oz, 8 oz, 1 lb in mg
            else:
                quantity = rng.randint(6, 60)
            shelf_life = 365 if product.category in ("flower", "pre-roll") else 540
            received = today - timedelta(days=rng.randint(1, 120))
            packages.append(
                Package(
                    tag=metrc_tag(facility, seq),
                    product_id=product.id,
                    quantity=quantity,
                    status="active",
                    lab_testing=rng.choices(("passed", "retest_passed"), weights=(19, 1))[0],
                    expires_on=received + timedelta(days=shelf_life + rng.randint(0, 90)),
                    location=rng.choice(LOCATIONS),
                    received_at=datetime.combine(received, time(15, 0), UTC)
                    + timedelta(minutes=rng.randint(0, 240)),
                    batch=f"{facility[:4]}-{received:%y%m}-{rng.randint(1, 99):02d}",
                )
            )
    # About one package in twelve gets a state that must be refused, spread over the catalogue, and the
    # named scenarios are always present.
    troubles: list[tuple[str, dict[str, Any]]] = [
        ("on_hold", {"status": "on_hold"}),
        ("quarantined", {"status": "quarantined"}),
        ("expired", {"expires_on": today - timedelta(days=rng.randint(1, 30))}),
        ("lab_failed", {"lab_testing": "failed"}),
        ("lab_pending", {"lab_testing": "submitted"}),
        ("finished", {"status": "finished", "quantity": 0}),
    ]
    scenarios: dict[str, str] = {}
    unit_indexes = [i for i, p in enumerate(packages) if not p.product_id.startswith("FLW-B")]
    chosen = rng.sample(unit_indexes, k=len(packages) // 12)
    for n, i in enumerate(chosen):
        name, change = troubles[n % len(troubles)]
        packages[i] = msgspec.structs.replace(packages[i], **change)
        scenarios.setdefault(name, packages[i].tag)
    last = next(i for i in unit_indexes if i not in chosen)
    packages[last] = msgspec.structs.replace(packages[last], quantity=1)
    scenarios["last_unit"] = packages[last].tag
    return packages, scenarios


def _minus_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year - years, day=28)


def aamva_payload(
    *,
    jurisdiction: str,
    number: str,
    family: str,
    given: str,
    middle: str,
    birth: date,
    expiry: date,
    issued: date,
    sex: str,
    street: str,
    city: str,
    postal: str,
) -> str:
    """An AAMVA DL/ID card payload (2020 standard, version 10), as a serial scanner delivers it:
    header ``@ LF RS CR ANSI`` + IIN + versions + entry count, subfile designators (type, offset, length,
    the length counting the type and the closing CR), a DL subfile and a jurisdiction Z subfile.
    US dates are MMDDCCYY (devices.md §3)."""

    def d(day: date) -> str:
        return day.strftime("%m%d%Y")

    elements = [
        f"DAQ{number}",
        f"DCS{family}",
        f"DAC{given}",
        f"DAD{middle or 'NONE'}",
        f"DBD{d(issued)}",
        f"DBB{d(birth)}",
        f"DBA{d(expiry)}",
        f"DBC{sex}",
        "DAYBRO",
        "DAU070 IN",
        f"DAG{street}",
        f"DAI{city}",
        f"DAJ{jurisdiction}",
        f"DAK{postal.ljust(9, '0')}",
        f"DCF{number[-4:]}{issued:%Y%m%d}DEMO",
        "DCGUSA",
        "DDEN",
        "DDFN",
        "DDGN",
        "DDAF",
    ]
    dl = "DL" + "\n".join(elements) + "\r"
    zsub = f"Z{jurisdiction[0]}" + f"Z{jurisdiction[0]}ADEMO" + "\r"
    entries = 2
    header = f"@\n\x1e\rANSI {IIN[jurisdiction]}1000{entries:02d}"
    offset = len(header) + 10 * entries
    designators = f"DL{offset:04d}{len(dl):04d}" + f"Z{jurisdiction[0]}{offset + len(dl):04d}{len(zsub):04d}"
    return header + designators + dl + zsub


def demo_id_hash(jurisdiction: str, number: str, key: bytes = b"storehub-demo-key") -> str:
    """The demo's stand-in for the identity core's keyed hash (HMAC-SHA256 over issuer and number)."""
    return hmac.new(key, f"{jurisdiction}:{number}".encode(), hashlib.sha256).hexdigest()


def _customers(today: date, home: str, id_hasher: Callable[[str, str], str]) -> tuple[DemoCustomer, ...]:
    out: list[DemoCustomer] = []
    for row in _load("customers.json")["customers"]:
        state = home if row["jurisdiction"] == "home" else _AWAY.get(home, "WI")
        birth = _minus_years(today, row["age_years"]) - timedelta(days=row["age_extra_days"])
        expiry = today + timedelta(days=row["id_expires_in_days"])
        issued = _minus_years(expiry, 8)
        registration = row.get("medical_registration", "")
        reg_expiry = today + timedelta(days=row["registration_expires_in_days"]) if registration else None
        customer = Customer(
            id=row["id"],
            customer_type=row["customer_type"],
            residency=state,
            birth_date=birth,
            id_hash=id_hasher(state, row["licence_number"]),
            id_expires_on=expiry,
            medical_registration=registration,
            medical_registration_expires_on=reg_expiry,
            loyalty_points=row["loyalty_points"],
            consent_to_retain=row["consent_to_retain"],
            display_name=row["given"].title() if row["consent_to_retain"] else "",
        )
        scan = aamva_payload(
            jurisdiction=state,
            number=row["licence_number"],
            family=row["family"],
            given=row["given"],
            middle=row["middle"],
            birth=birth,
            expiry=expiry,
            issued=issued,
            sex=row["sex"],
            street=row["street"],
            city=row["city"],
            postal=row["postal"],
        )
        out.append(
            DemoCustomer(
                role=row["role"],
                customer=customer,
                id_scan=scan,
                given_name=row["given"],
                family_name=row["family"],
            )
        )
    return tuple(out)


def build_demo_store(
    today: date,
    *,
    seed: int = DEFAULT_SEED,
    home_jurisdiction: str = "MI",
    id_hasher: Callable[[str, str], str] = demo_id_hash,
) -> DemoStore:
    """The whole demo store for a store whose business day is ``today``. Pass the identity core's
    keyed hash as ``id_hasher`` so scanning a demo licence finds the demo customer."""
    if home_jurisdiction not in IIN:
        raise ValueError(
            f"no demo IIN for jurisdiction {home_jurisdiction!r}; known: {', '.join(sorted(IIN))}"
        )
    rng = random.Random(seed)
    products = demo_products()
    packages, scenarios = _packages(products, rng, today)
    return DemoStore(
        products=products,
        packages=tuple(packages),
        customers=_customers(today, home_jurisdiction, id_hasher),
        scenarios=scenarios,
        home_jurisdiction=home_jurisdiction,
    )
