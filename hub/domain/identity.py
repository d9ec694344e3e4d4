"""The check-in decision: may this person buy here today, as which kind of customer, and what may we keep?

Pure: the licence comes from ``hub.domain.aamva``, the registry answer from the state-sync channel (the
core only reads it), the store's jurisdiction and time zone from ``hub.domain.limits.rules``. Every refusal
is a sentence a budtender can read aloud; every rule it applies comes from the jurisdiction file, which
cites its source (DESIGN.md: "No sale without a verified, unexpired ID of legal age; medical sales need a
valid, unexpired registration").
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from hub.domain.aamva import DriverLicence
from hub.domain.limits.engine import LimitCustomer
from hub.domain.limits.rules import Jurisdiction, load_jurisdiction

__all__ = [
    "CUSTOMER_TYPES",
    "CheckInDecision",
    "MedicalRegistration",
    "Refusal",
    "RegistryAnswer",
    "Retention",
    "age_on",
    "check_in",
]

CUSTOMER_TYPES = ("adult", "medical", "caregiver")
REGISTRY_STATUSES = ("active", "inactive", "not-found", "unreachable")


class MedicalRegistration(msgspec.Struct, frozen=True, kw_only=True):
    """The medical card or registration the customer presents (a caregiver presents their own)."""

    number: str
    jurisdiction: str
    expires: date | None = None


class RegistryAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What the state registry said about the registration (Metrc patient status, BioTrack lookup...).

    ``status``: "active", "inactive" (suspended, revoked), "not-found", or "unreachable" (timeout, 5xx,
    no internet). ``expires`` is the registry's own expiry date when it gives one.
    """

    status: str
    expires: date | None = None


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # for the UI: id-expired, under-age, no-registration, registration-expired, ...
    message: str


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """What the store may keep about this customer without asking for more consent."""

    keep: list[str]
    consent_required_for_profile: bool
    note: str
    source: str


class CheckInDecision(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    customer_class: str | None  # for the limits engine; None when refused before it is known
    age: int
    resident: bool  # the ID's jurisdiction is the store's
    refusals: list[Refusal] = []
    warnings: list[str] = []
    retention: Retention
    limit_customer: LimitCustomer | None = None


def age_on(birth: date, today: date) -> int:
    """Completed years on ``today``. Someone born on 29 February turns a year older on 1 March in a
    non-leap year (the later of the two readings, so we never sell a day early)."""
    years = today.year - birth.year
    if (today.month, today.day) < (birth.month, birth.day):
        years -= 1
    return years


def check_in(
    licence: DriverLicence,
    *,
    jurisdiction: str | Jurisdiction,
    customer_type: str,
    now: datetime,
    registration: MedicalRegistration | None = None,
    registry: RegistryAnswer | None = None,
    patient_age: int | None = None,
) -> CheckInDecision:
    """Decide a check-in at the store's local date of ``now``.

    ``customer_type``: "adult", "medical" (the patient in person) or "caregiver" (buying for a patient;
    ``patient_age`` under 18 makes the limit class "minor-patient").
    """
    j = jurisdiction if isinstance(jurisdiction, Jurisdiction) else load_jurisdiction(jurisdiction)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("'now' must be an aware datetime")
    if customer_type not in CUSTOMER_TYPES:
        raise ValueError(f"customer type must be one of {CUSTOMER_TYPES}, not {customer_type!r}")
    if registry is not None and registry.status not in REGISTRY_STATUSES:
        raise ValueError(f"registry status must be one of {REGISTRY_STATUSES}, not {registry.status!r}")
    policy = j.check_in
    today = now.astimezone(j.timezone).date()  # the store's calendar, not UTC's
    age = age_on(licence.date_of_birth, today)
    resident = licence.jurisdiction == j.code and licence.country == "USA"
    refusals: list[Refusal] = []
    warnings: list[str] = list(licence.warnings)

    def refuse(code: str, message: str) -> None:
        refusals.append(Refusal(code=code, message=message))

    if licence.expiry < today:
        refuse("id-expired", f"ID expired on {licence.expiry.isoformat()}: ask for a current ID.")
    if licence.issue_date is not None and licence.issue_date > today:
        refuse(
            "id-not-yet-valid", f"The ID says it was issued on {licence.issue_date.isoformat()}, after today."
        )

    customer_class: str | None = None
    limit_age: int | None = age
    if customer_type == "adult":
        if not policy.adult_use:
            refuse(
                "no-adult-use", f"{j.name} has no adult-use sales: only registered medical patients may buy."
            )
        if age < policy.adult_min_age:
            refuse(
                "under-age",
                f"Customer is {age}; adult-use sales in {j.name} need {policy.adult_min_age} or older.",
            )
        customer_class = "adult" if resident else "adult-nonresident"
    else:
        if not policy.medical:
            refuse("no-medical", f"This store's {j.name} rules do not cover medical sales.")
        if customer_type == "medical":
            if age < policy.medical_min_age:
                refuse(
                    "under-age",
                    f"Patient is {age}; in {j.name} patients under {policy.medical_min_age} buy through "
                    "their registered caregiver.",
                )
            customer_class = "medical"
        else:
            if age < policy.caregiver_min_age:
                refuse(
                    "under-age",
                    f"Caregiver is {age}; caregivers in {j.name} must be {policy.caregiver_min_age} or older.",
                )
            limit_age = patient_age
            customer_class = "minor-patient" if patient_age is not None and patient_age < 18 else "caregiver"
            if patient_age is None:
                warnings.append("patient's age unknown: every age tier applies (the stricter wins)")
        _check_registration(j, today, registration, registry, refuse, warnings)

    if customer_class is not None and customer_class in j.classes and not j.classes[customer_class].served:
        refuse(
            "not-served",
            f"{j.name}: {j.classes[customer_class].note or 'no purchase rules for this customer'}.",
        )
    retention = _retention(j, customer_class)
    allowed = not refusals
    return CheckInDecision(
        allowed=allowed,
        customer_class=customer_class,
        age=age,
        resident=resident,
        refusals=refusals,
        warnings=warnings,
        retention=retention,
        limit_customer=LimitCustomer(customer_class=customer_class, age=limit_age)
        if allowed and customer_class
        else None,
    )


def _check_registration(
    j: Jurisdiction,
    today: date,
    registration: MedicalRegistration | None,
    registry: RegistryAnswer | None,
    refuse,
    warnings: list[str],
) -> None:
    policy = j.check_in
    if registration is None:
        refuse("no-registration", f"No medical registration presented: {j.name} medical sales need one.")
        return
    reg_state = registration.jurisdiction.strip().upper()
    if reg_state != j.code and reg_state not in policy.medical_reciprocity:
        refuse(
            "out-of-state-registration",
            f"Medical registration is from {reg_state}; {j.name} does not accept out-of-state registrations.",
        )
    expires = registration.expires
    if registry is not None and registry.expires is not None:
        # The registry is authoritative; the card may be out of date in either direction.
        expires = registry.expires if expires is None else min(expires, registry.expires)
    if expires is not None and expires < today:
        refuse(
            "registration-expired",
            f"Medical registration expired on {expires.isoformat()}: renew in the state portal.",
        )
    if policy.registry != "state-registry":
        if expires is None:
            refuse(
                "registration-expiry-unknown",
                "The medical registration shows no expiry date: check the card.",
            )
        return
    status = registry.status if registry is not None else "unreachable"
    if status == "active":
        return
    if status == "inactive":
        refuse(
            "registration-inactive",
            f"The {j.name} registry says this medical registration is not active (suspended or revoked): "
            "the patient should contact the state program.",
        )
    elif status == "not-found":
        refuse(
            "registration-not-found",
            f"The {j.name} registry has no registration {registration.number!r}: check the number on the card.",
        )
    elif policy.registry_unreachable == "allow-card" and expires is not None:
        warnings.append(
            f"{j.name} registry unreachable: accepted on the unexpired card; verify when the registry is back"
            + (f" ({policy.registry_note})" if policy.registry_note else "")
        )
    else:
        refuse(
            "registry-unreachable",
            f"The {j.name} patient registry cannot be reached and a registry check is required before a "
            "medical sale: try again in a few minutes"
            + (f" ({policy.registry_note})." if policy.registry_note else "."),
        )


_MEDICAL_ONLY = frozenset({"medical-registration-hash", "address-on-receipt"})


def _retention(j: Jurisdiction, customer_class: str | None) -> Retention:
    policy = j.check_in.retention
    medical = customer_class in ("medical", "caregiver", "minor-patient")
    keep = [k for k in policy.keep if medical or k not in _MEDICAL_ONLY]
    if medical and "medical-registration-hash" not in keep:
        keep.append("medical-registration-hash")
    note = policy.note or "keep the minimum: identity numbers only as keyed hashes (DESIGN.md)"
    if medical:
        note += "; medical data is shown only to roles that need it"
    return Retention(
        keep=keep,
        consent_required_for_profile=policy.consent_required_for_profile,
        note=note,
        source=policy.source,
    )
