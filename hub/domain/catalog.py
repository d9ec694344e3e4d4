"""Catalogue and inventory model: products, packages, customers, sellability and the product search index.

Pure data and functions (no I/O). Stored in LMDB as msgpack, so every Struct here follows the stored-type
rules: new fields go last with defaults, and unknown fields are tolerated (no ``forbid_unknown_fields``).
Money is integer cents, weight integer milligrams, potency integer basis points (1 bp = 0.01 %).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime
from typing import Literal

import msgspec

from hub.domain.items import LimitAttributes

SoldBy = Literal["each", "weight"]
PackageStatus = Literal["active", "on_hold", "quarantined", "finished"]
# Metrc's lab-testing states, lower-cased (Metrc v2 `LabTestingState`); BioTrack maps onto the same set.
LabTesting = Literal[
    "not_submitted",
    "submitted",
    "in_progress",
    "passed",
    "failed",
    "retest_passed",
    "retest_failed",
    "not_required",
]
# Only these may be sold: a package without a passing test is not releasable (e.g. 4 CCR 15307).
LAB_SELLABLE: frozenset[str] = frozenset({"passed", "retest_passed", "not_required"})
CustomerType = Literal["adult", "medical"]

# Metrc tags: 24 characters; production labels are `1A4` + 21 hex digits, sandbox labels are any 24
# upper-case alphanumerics (state-systems.md §1.9). BioTrack barcodes are 16 digits.
_METRC_TAG = re.compile(r"^[0-9A-Z]{24}$")
_BIOTRACK_TAG = re.compile(r"^[0-9]{16}$")


def tag_system(tag: str) -> Literal["metrc", "biotrack"] | None:
    """Which track-and-trace system a package tag belongs to, by its shape; None when neither."""
    if _BIOTRACK_TAG.match(tag):
        return "biotrack"
    if _METRC_TAG.match(tag):
        return "metrc"
    return None


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why the core said no: a stable ``code`` the UI can act on and a sentence a budtender can read."""

    code: str
    message: str


class Product(msgspec.Struct, frozen=True, kw_only=True):
    """A sellable product (a SKU). For ``sold_by == "weight"`` ``price_cents`` is per gram and ``limits``
    describe one gram; otherwise both are per unit (one package unit)."""

    id: str  # the SKU
    name: str
    brand: str
    category: str  # the LimitAttributes category vocabulary: flower, pre-roll, vape, edible, ...
    sold_by: SoldBy
    price_cents: int
    limits: LimitAttributes
    strain: str = ""
    strain_type: str = ""  # indica / sativa / hybrid / cbd; for search and the menu
    tax_class: str = "cannabis"
    barcode: str = ""  # UPC/EAN on the retail unit, if any
    thc_bp: int = 0  # THC potency in basis points of weight (2250 = 22.50 %)
    cbd_bp: int = 0
    thc_mg_per_unit: int = 0  # for dosed products (edibles, beverages, capsules)
    cbd_mg_per_unit: int = 0
    coa_ref: str = ""  # certificate-of-analysis reference (lab + report number, or the COA's URL)
    active: bool = True
    image_url: str = ""
    shelf_location: str = ""  # where the product sits on the sales floor ("A3")

    @property
    def is_cannabis(self) -> bool:
        # Accessories are not cannabis: the one-cent floor and the limits do not apply to them.
        return self.category != "accessory"


class Package(msgspec.Struct, frozen=True, kw_only=True):
    """One state-tracked package on the shelf. ``quantity`` is in units for products sold each and in
    milligrams for products sold by weight."""

    tag: str
    product_id: str
    quantity: int
    status: PackageStatus = "active"
    lab_testing: LabTesting = "passed"
    expires_on: date | None = None
    location: str = ""
    received_at: datetime | None = None  # UTC; FIFO picking goes oldest first
    batch: str = ""  # source harvest / production batch, for recalls and spot checks
    packaged_on: date | None = None  # the state's PackagedDate
    harvested_on: date | None = None  # the source harvest's date, where the state gives it


ConsentKind = Literal["profile", "marketing", "sms"]


class Consent(msgspec.Struct, frozen=True, kw_only=True):
    """One answer of the customer: the words they were shown, yes or no, when, and who asked."""

    kind: ConsentKind
    granted: bool
    text: str
    at: datetime
    staff: str
    where: str = ""  # register id or "backoffice"


class CustomerNote(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    at: datetime
    staff: str


class Customer(msgspec.Struct, frozen=True, kw_only=True):
    """A customer as the store may keep them: the minimum the jurisdiction allows (935 CMR 500.140(2);
    Oregon forbids retention without consent). The ID number is only ever a keyed hash."""

    id: str
    customer_type: CustomerType
    residency: str  # jurisdiction code of the ID's issuer, e.g. "MI"
    birth_date: date
    id_hash: str  # keyed hash (HMAC) of issuer + ID number; computed by the identity core
    id_expires_on: date | None = None
    medical_registration: str = ""
    medical_registration_expires_on: date | None = None
    loyalty_points: int = 0
    consent_to_retain: bool = False
    display_name: str = ""  # only with consent; the register greets by it
    # enrolment (hub/domain/customers.py): contact details only with a consent to be contacted
    family_name: str = ""
    phone_hash: str = ""  # keyed hash of the phone number: found by phone without keeping it
    phone: str = ""  # kept only with SMS or marketing consent
    email: str = ""  # kept only with marketing consent
    consents: tuple[Consent, ...] = ()
    notes: tuple[CustomerNote, ...] = ()
    groups: tuple[str, ...] = ()  # promotion groups: "veteran", "senior", "staff"...
    enrolled_at: datetime | None = None
    enrolled_by: str = ""
    last_visit_at: datetime | None = None
    lifetime_points: int = 0  # points ever earned: the loyalty tier
    merged_into: str = ""  # set on a duplicate folded into another record


def sellability(
    package: Package | None, product: Product | None, today: date, quantity: int = 1
) -> Refusal | None:
    """None when ``quantity`` (units, or mg for weight products) of ``package`` may be sold today,
    otherwise the first reason it may not, in the order a budtender can act on."""
    if package is None:
        return Refusal(code="unknown_package", message="This package tag is not in the store's inventory.")
    if product is None or product.id != package.product_id:
        return Refusal(
            code="unknown_product",
            message=f"Package {package.tag} belongs to a product the catalogue does not know.",
        )
    if not product.active:
        return Refusal(code="product_inactive", message=f"{product.name} is not on the menu.")
    if package.status == "on_hold":
        return Refusal(code="on_hold", message=f"Package {package.tag} is on hold and cannot be sold.")
    if package.status == "quarantined":
        return Refusal(
            code="quarantined", message=f"Package {package.tag} is quarantined (returned or under review)."
        )
    if package.status == "finished" or package.quantity <= 0:
        return Refusal(code="finished", message=f"Package {package.tag} is finished (none left).")
    if package.expires_on is not None and package.expires_on < today:
        return Refusal(
            code="expired",
            message=f"Package {package.tag} expired on {package.expires_on.isoformat()}.",
        )
    if package.lab_testing not in LAB_SELLABLE:
        state = package.lab_testing.replace("_", " ")
        return Refusal(
            code="lab_not_passed",
            message=f"Package {package.tag} has not passed lab testing ({state}).",
        )
    if quantity > package.quantity:
        return Refusal(
            code="short",
            message=f"Package {package.tag} has only {format_quantity(product, package.quantity)} left.",
        )
    return None


def format_quantity(product: Product, quantity: int) -> str:
    """Units as "3 units"; milligrams as grams with up to three decimals ("3.5 g")."""
    if product.sold_by == "weight":
        return f"{format_grams(quantity)} g"
    return f"{quantity} unit" + ("" if quantity == 1 else "s")


def format_grams(mg: int) -> str:
    sign = "-" if mg < 0 else ""
    whole, frac = divmod(abs(mg), 1000)
    return f"{sign}{whole}" + (f".{frac:03d}".rstrip("0") if frac else "")


# ---------------------------------------------------------------------------------------------------------
# Search


def _fold(text: str) -> str:
    # Case- and accent-insensitive: "Açaí" is found by "acai".
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


_TOKEN = re.compile(r"[0-9a-z]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(_fold(text))


class CatalogIndex:
    """In-memory prefix index over product name, brand, category, strain, strain type, SKU and barcode.

    Every query term must prefix-match some token of a product (AND across terms), so "blue dr 3.5"
    finds "Blue Dream 3.5g". Lookups are a bisect into a sorted token list: answers as the budtender types,
    without scanning the catalogue. Built once, then updated product by product.
    """

    def __init__(self, products: Iterable[Product] = ()) -> None:
        self._products: dict[str, Product] = {}
        self._postings: dict[str, set[str]] = {}  # token -> product ids
        self._sorted_tokens: list[str] = []
        self._product_tokens: dict[str, frozenset[str]] = {}
        for product in products:
            self.upsert(product)

    def __len__(self) -> int:
        return len(self._products)

    def get(self, product_id: str) -> Product | None:
        return self._products.get(product_id)

    def products(self) -> list[Product]:
        """Every product indexed, in the order first added."""
        return list(self._products.values())

    @staticmethod
    def _tokens_of(product: Product) -> frozenset[str]:
        fields = (
            product.name,
            product.brand,
            product.category,
            product.strain,
            product.strain_type,
            product.id,
            product.barcode,
        )
        result: set[str] = set()
        for field in fields:
            result.update(tokens(field))
        # "pre-roll" and "Blue Dream" are also found as "preroll" and "bluedream".
        for field in (product.category, product.strain, product.brand):
            parts = tokens(field)
            if len(parts) > 1:
                result.add("".join(parts))
        return frozenset(result)

    def upsert(self, product: Product) -> None:
        self.remove(product.id)
        toks = self._tokens_of(product)
        self._products[product.id] = product
        self._product_tokens[product.id] = toks
        for tok in toks:
            ids = self._postings.get(tok)
            if ids is None:
                self._postings[tok] = {product.id}
                bisect.insort(self._sorted_tokens, tok)
            else:
                ids.add(product.id)

    def remove(self, product_id: str) -> None:
        toks = self._product_tokens.pop(product_id, None)
        if toks is None:
            return
        del self._products[product_id]
        for tok in toks:
            ids = self._postings[tok]
            ids.discard(product_id)
            if not ids:
                del self._postings[tok]
                i = bisect.bisect_left(self._sorted_tokens, tok)
                del self._sorted_tokens[i]

    def _prefix_ids(self, prefix: str) -> set[str]:
        out: set[str] = set()
        i = bisect.bisect_left(self._sorted_tokens, prefix)
        while i < len(self._sorted_tokens) and self._sorted_tokens[i].startswith(prefix):
            out |= self._postings[self._sorted_tokens[i]]
            i += 1
        return out

    def search(self, query: str, limit: int = 20, include_inactive: bool = False) -> list[Product]:
        """Products matching every term of ``query`` by prefix, best first: more exact-token matches,
        then name-prefix matches, then by name."""
        terms = tokens(query)
        if not terms:
            return []
        # The rarest term first keeps the intersection small.
        candidate: set[str] | None = None
        for term in sorted(set(terms), key=len, reverse=True):
            ids = self._prefix_ids(term)
            candidate = ids if candidate is None else candidate & ids
            if not candidate:
                return []
        assert candidate is not None
        folded_query = _fold(query).strip()

        def rank(pid: str) -> tuple[int, int, str, str]:
            product = self._products[pid]
            exact = sum(1 for t in terms if t in self._product_tokens[pid])
            name_prefix = 0 if _fold(product.name).startswith(folded_query) else 1
            return (-exact, name_prefix, _fold(product.name), pid)

        hits = [pid for pid in candidate if include_inactive or self._products[pid].active]
        hits.sort(key=rank)
        return [self._products[pid] for pid in hits[:limit]]
