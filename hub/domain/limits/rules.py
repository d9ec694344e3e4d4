"""Purchase-limit rules as data: the schema of ``rules/XX.toml`` and its loader.

A jurisdiction file declares
* **buckets**: what is counted (a quantity in one unit) and which product categories contribute, by which
  measure (net weight, concentrate weight, mg THC, volume, units), optionally with an equivalency factor.
  One bucket with several factors is an *equivalency pool* (CO, MA, NJ, MO); two buckets fed by the same
  category are *nested caps* (MI, AZ: concentrate counts in the total and in its own sub-cap).
* **rules**: a cap on one bucket, for some customer classes (and ages), over a window: ``transaction``,
  ``day`` (store-local calendar day), ``rolling:N`` (N x 24 h ending now), ``month`` (store-local calendar
  month). Each rule carries its source; values the sources disagree on are marked ``disputed``.
* **classes** served, the store time zone, the check-in policy (ages, registry, retention).

Every quantity is written with its unit ("2.5 oz", "8 g", "500 mg", "72 floz") and converted ONCE here to
integers: mg for weight and mg THC, microlitres for volume, units for counts. Ounces are
28.349523125 g unless the file says otherwise (CA: 28.5 g, 4 CCR 15409; NJ: 28.35 g). Conversions round
down, so a limit is never more generous than the law (1 oz = 28 349 mg).
"""

from __future__ import annotations

import math
import tomllib
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

__all__ = [
    "CUSTOMER_CLASSES",
    "KNOWN_CATEGORIES",
    "Bucket",
    "CheckInPolicy",
    "ClassPolicy",
    "Contribution",
    "Jurisdiction",
    "RuleError",
    "Rule",
    "Window",
    "available_jurisdictions",
    "load_jurisdiction",
    "parse_jurisdiction",
    "store_jurisdiction",
]

CUSTOMER_CLASSES = ("adult", "adult-nonresident", "medical", "caregiver", "minor-patient")
# Categories the catalogue may use (hub.domain.items.LimitAttributes). A category outside this list and
# outside every bucket of a jurisdiction is a mis-keyed product, refused rather than let through.
KNOWN_CATEGORIES = frozenset(
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
        "suppository",
        "plant",
        "seed",
        "clone",
        "accessory",
    }
)
MEASURES = ("net_weight_mg", "concentrate_mg", "thc_mg", "volume_ul", "units", "plant_mg")
_UNIT_DIMENSION = {"mg": "mass", "mg THC": "mass", "ul": "volume", "units": "count"}
_MEASURE_DIMENSION = {
    "net_weight_mg": "mass",
    "concentrate_mg": "mass",
    "thc_mg": "mass",
    "plant_mg": "mass",
    "volume_ul": "volume",
    "units": "count",
}
_FL_OZ_UL = Decimal("29573.5295625")  # US fluid ounce in microlitres


class RuleError(ValueError):
    """A rules file is wrong; the message names the file and the field."""


# ------------------------------------------------------------------------------------ file schema (TOML)


class ContributionSpec(msgspec.Struct, forbid_unknown_fields=True):
    categories: list[str]
    measure: str
    per: str | None = None  # "8 g" of this measure ...
    equals: str | None = None  # ... counts as "1 oz" of the bucket
    thc_max_permille: int | None = None  # only products at or below this potency (OH tier I: 230)
    thc_min_permille: int | None = None  # only products above this potency (OH tier II)
    note: str = ""


class BucketSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    label: str
    unit: str  # "mg", "mg THC", "ul", "units"
    contributions: list[ContributionSpec]
    note: str = ""


class RuleSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    classes: list[str]
    bucket: str
    limit: str
    window: str
    source: str
    min_age: int | None = None
    max_age: int | None = None
    disputed: bool = False
    note: str = ""


class ClassPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    label: str
    served: bool = True
    # "none": the state holds no allotment; "recommended": use it when the state channel has it;
    # "required": the state's figure is the legal limit (FL registry order, PA certification).
    state_allotment: str = "none"
    note: str = ""


class RetentionPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keep: list[str]  # what the store may keep about a customer without extra consent
    consent_required_for_profile: bool = False
    note: str = ""
    source: str = ""
    # a customer profile is purged this many days after the last visit (hub/customers: the nightly job)
    profile_days: int = 0
    profile_source: str = ""


# what an exit or shelf label may be asked to carry (hub/domain/labels.py renders each)
LABEL_FIELDS = (
    "product",
    "warning",
    "thc",
    "cbd",
    "licence",
    "package_tag",
    "harvest_date",
    "packaged_date",
    "net_weight",
    "lab_qr",
)


class LabelPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the state requires on a retail package's label, and the warning's words."""

    required: list[str] = []
    warning: str = ""
    symbol: str = ""  # the state's universal symbol, named (printed as text where no image is loaded)
    source: str = ""
    confirmed: bool = False


class CheckInPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    adult_use: bool
    medical: bool
    adult_min_age: int = 21
    medical_min_age: int = 18
    caregiver_min_age: int = 21
    age_source: str = ""
    # How medical registrations are verified: "none" (card/recommendation only), "state-registry".
    registry: str = "none"
    # When the registry cannot be reached: "refuse" or "allow-card" (an unexpired card seen by staff).
    registry_unreachable: str = "refuse"
    registry_note: str = ""
    medical_reciprocity: list[str] = []
    retention: RetentionPolicy = msgspec.field(default_factory=lambda: RetentionPolicy(keep=[]))


class JurisdictionSpec(msgspec.Struct, forbid_unknown_fields=True):
    code: str
    name: str
    timezone: str
    confirmed: bool
    classes: list[ClassPolicy]
    check_in: CheckInPolicy
    buckets: list[BucketSpec] = []
    rules: list[RuleSpec] = []
    ounce: str = "28.349523125 g"
    warnings: list[str] = []
    sources: list[str] = []
    label: LabelPolicy = msgspec.field(default_factory=LabelPolicy)


# ---------------------------------------------------------------------------- compiled (integer) form


class Contribution(msgspec.Struct, frozen=True):
    """Counts ``attribute x num / den`` toward a bucket for the listed categories."""

    categories: frozenset[str]
    measure: str
    num: int
    den: int
    thc_max_permille: int | None
    thc_min_permille: int | None


class Bucket(msgspec.Struct, frozen=True):
    id: str
    label: str
    unit: str
    contributions: tuple[Contribution, ...]
    scale: int  # lcm of the contribution denominators: amounts are kept x scale, exactly
    note: str


class Window(msgspec.Struct, frozen=True):
    kind: str  # "transaction", "day", "rolling", "month"
    days: int = 0

    @property
    def phrase(self) -> str:
        return {
            "transaction": "per transaction",
            "day": "per day",
            "month": "per calendar month",
        }.get(self.kind) or f"per {self.days} days"


class Rule(msgspec.Struct, frozen=True):
    id: str
    bucket: str
    classes: frozenset[str]
    limit: int  # in the bucket's unit
    window: Window
    source: str
    min_age: int | None
    max_age: int | None
    disputed: bool
    note: str
    limit_text: str  # as written in the file, for `limits show`


class Jurisdiction(msgspec.Struct, frozen=True):
    code: str
    name: str
    timezone: ZoneInfo
    confirmed: bool
    warnings: tuple[str, ...]
    ounce_mg: Decimal
    classes: dict[str, ClassPolicy]
    buckets: dict[str, Bucket]
    rules: tuple[Rule, ...]
    check_in: CheckInPolicy
    sources: tuple[str, ...]
    label: LabelPolicy = msgspec.field(default_factory=LabelPolicy)

    def class_label(self, customer_class: str) -> str:
        policy = self.classes.get(customer_class)
        return policy.label if policy else customer_class


# --------------------------------------------------------------------------------------------- loading


def available_jurisdictions() -> list[str]:
    """Codes of every bundled rules file, sorted."""
    folder = resources.files(__package__).joinpath("rules")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


@cache
def load_jurisdiction(code: str) -> Jurisdiction:
    """The compiled rules of one jurisdiction (``"CA"``); cached, so call it freely."""
    code = code.strip().upper()
    if not (code.isalpha() and 2 <= len(code) <= 3):
        raise RuleError(f"{code!r} is not a jurisdiction code (two letters, e.g. CA)")
    path = resources.files(__package__).joinpath("rules", f"{code}.toml")
    if not path.is_file():
        raise RuleError(
            f"no purchase-limit rules for {code}; available: {', '.join(available_jurisdictions())}"
        )
    return parse_jurisdiction(path.read_text(encoding="utf-8"), origin=f"{code}.toml")


def store_jurisdiction(code: str, timezone: str | None = None) -> Jurisdiction:
    """The rules for a store whose zone differs from the file's (FL panhandle, western MI, eastern OR):
    calendar-day and calendar-month windows follow the store's own midnight."""
    j = load_jurisdiction(code)
    if timezone is None or timezone == j.timezone.key:
        return j
    try:
        return msgspec.structs.replace(j, timezone=ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuleError(f"unknown time zone {timezone!r}") from exc


def parse_jurisdiction(text: str, *, origin: str = "<rules>") -> Jurisdiction:
    try:
        raw = tomllib.loads(text)
        spec = msgspec.convert(raw, JurisdictionSpec)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise RuleError(f"{origin}: {exc}") from exc
    return _compile(spec, origin)


def _compile(spec: JurisdictionSpec, origin: str) -> Jurisdiction:
    def fail(msg: str) -> RuleError:
        return RuleError(f"{origin}: {msg}")

    try:
        tz = ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail(f"unknown time zone {spec.timezone!r}") from exc
    ounce_mg = _quantity(spec.ounce, "mass", Decimal("28349.523125"), fail)
    if not Decimal(28000) <= ounce_mg <= Decimal(29000):
        raise fail(f"ounce {spec.ounce!r} is not about 28.35 g")

    classes: dict[str, ClassPolicy] = {}
    for policy in spec.classes:
        if policy.id not in CUSTOMER_CLASSES:
            raise fail(f"unknown customer class {policy.id!r}")
        if policy.state_allotment not in ("none", "recommended", "required"):
            raise fail(f"class {policy.id}: state_allotment must be none, recommended or required")
        classes[policy.id] = policy

    buckets: dict[str, Bucket] = {}
    for b in spec.buckets:
        if b.unit not in _UNIT_DIMENSION:
            raise fail(f"bucket {b.id}: unit must be one of {sorted(_UNIT_DIMENSION)}")
        contributions = []
        for c in b.contributions:
            if c.measure not in MEASURES:
                raise fail(f"bucket {b.id}: measure {c.measure!r} is not one of {MEASURES}")
            if (c.per is None) != (c.equals is None):
                raise fail(f"bucket {b.id}: 'per' and 'equals' go together")
            num, den = 1, 1
            if c.per is not None and c.equals is not None:
                per = _quantity(c.per, _MEASURE_DIMENSION[c.measure], ounce_mg, fail)
                equals = _quantity(c.equals, _UNIT_DIMENSION[b.unit], ounce_mg, fail)
                # Rounded down once, like limits, so "8 g = 1 oz" makes 8 000 mg fill a 28 349 mg cap exactly.
                num, den = math.floor(equals), math.floor(per)
                if num <= 0 or den <= 0:
                    raise fail(f"bucket {b.id}: equivalency {c.per} = {c.equals} is not positive")
                g = math.gcd(num, den)
                num, den = num // g, den // g
            contributions.append(
                Contribution(
                    categories=frozenset(c.categories),
                    measure=c.measure,
                    num=num,
                    den=den,
                    thc_max_permille=c.thc_max_permille,
                    thc_min_permille=c.thc_min_permille,
                )
            )
        scale = math.lcm(*(c.den for c in contributions)) if contributions else 1
        if b.id in buckets:
            raise fail(f"bucket {b.id} defined twice")
        buckets[b.id] = Bucket(b.id, b.label, b.unit, tuple(contributions), scale, b.note)

    rules = []
    seen = set()
    for r in spec.rules:
        if r.id in seen:
            raise fail(f"rule {r.id} defined twice")
        seen.add(r.id)
        if r.bucket not in buckets:
            raise fail(f"rule {r.id}: unknown bucket {r.bucket!r}")
        for cls in r.classes:
            if cls not in classes:
                raise fail(f"rule {r.id}: class {cls!r} is not declared in [[classes]]")
        if not r.source.strip():
            raise fail(f"rule {r.id}: every rule cites its source")
        limit = math.floor(_quantity(r.limit, _UNIT_DIMENSION[buckets[r.bucket].unit], ounce_mg, fail))
        rules.append(
            Rule(
                id=r.id,
                bucket=r.bucket,
                classes=frozenset(r.classes),
                limit=limit,
                window=_window(r.window, fail),
                source=r.source,
                min_age=r.min_age,
                max_age=r.max_age,
                disputed=r.disputed,
                note=r.note,
                limit_text=r.limit,
            )
        )
    for cls, policy in classes.items():
        if (
            policy.served
            and policy.state_allotment != "required"
            and not any(cls in r.classes for r in rules)
        ):
            raise fail(f"class {cls} is served but has no rules")
    for f in spec.label.required:
        if f not in LABEL_FIELDS:
            raise fail(f"label.required: unknown field {f!r}; one of {', '.join(LABEL_FIELDS)}")
    if "warning" in spec.label.required and not spec.label.warning.strip():
        raise fail("label: the warning is required but its text is empty")
    if spec.check_in.retention.profile_days < 0:
        raise fail("check_in.retention.profile_days must not be negative")

    return Jurisdiction(
        code=spec.code,
        name=spec.name,
        timezone=tz,
        confirmed=spec.confirmed,
        warnings=tuple(spec.warnings),
        ounce_mg=ounce_mg,
        classes=classes,
        buckets=buckets,
        rules=tuple(rules),
        check_in=spec.check_in,
        sources=tuple(spec.sources),
        label=spec.label,
    )


def _window(text: str, fail) -> Window:
    text = text.strip()
    if text in ("transaction", "day", "month"):
        return Window(text)
    if text.startswith("rolling:"):
        days = text.removeprefix("rolling:")
        if days.isdigit() and int(days) > 0:
            return Window("rolling", int(days))
    raise fail(f"window {text!r} must be transaction, day, month or rolling:N")


_UNITS = {
    "mg": ("mass", Decimal(1)),
    "g": ("mass", Decimal(1000)),
    "kg": ("mass", Decimal(1_000_000)),
    "ul": ("volume", Decimal(1)),
    "ml": ("volume", Decimal(1000)),
    "l": ("volume", Decimal(1_000_000)),
    "floz": ("volume", _FL_OZ_UL),
    "units": ("count", Decimal(1)),
    "unit": ("count", Decimal(1)),
}


def _quantity(text: str, dimension: str, ounce_mg: Decimal, fail) -> Decimal:
    """ "2.5 oz" -> Decimal mg (exact; callers round down)."""
    parts = text.replace("_", "").split()
    if len(parts) != 2:
        raise fail(f"quantity {text!r} must be a number and a unit, e.g. '2.5 oz'")
    number, unit = parts
    try:
        value = Decimal(number)
    except InvalidOperation as exc:
        raise fail(f"quantity {text!r} has no number") from exc
    if unit == "oz":
        dim, factor = "mass", ounce_mg
    elif unit in _UNITS:
        dim, factor = _UNITS[unit]
    else:
        raise fail(f"quantity {text!r}: unknown unit {unit!r}")
    if dim != dimension:
        raise fail(f"quantity {text!r} is a {dim}, expected a {dimension}")
    if value < 0:
        raise fail(f"quantity {text!r} is negative")
    return value * factor
