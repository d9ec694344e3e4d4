"""Customer records: enrolment with consent, finding a customer again, merging duplicates, retention.

Pure decisions over ``hub.domain.catalog.Customer``; the store, the clock and the hashing key come in as
arguments. What the store keeps follows the jurisdiction and the customer's own answers:

- a record at all only with the customer's consent to keep a profile (Oregon forbids retaining personal
  information without it; Massachusetts allows no more than a retail sale needs without written
  permission — compliance-and-market.md §2);
- the ID number and the phone number as keyed hashes (found again, never read back: DESIGN.md);
- the phone in clear only with SMS or marketing consent, the e-mail only with marketing consent;
- each consent as the words shown, the answer, the time and the staff member who asked;
- removed after the jurisdiction's ``retention.profile_days`` without a visit (``due_for_purge``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import msgspec

from hub.domain.catalog import Consent, ConsentKind, Customer, CustomerNote, Refusal

# The words the customer is shown, stored verbatim with each answer (a store may word its own).
CONSENT_TEXTS: dict[str, str] = {
    "profile": (
        "I agree that this store keeps a customer profile with my name, date of birth, purchase history "
        "and loyalty points, so that I can earn rewards. I can ask for it to be deleted at any time."
    ),
    "marketing": (
        "I agree to receive offers and news from this store by e-mail and through its loyalty service. "
        "I can unsubscribe at any time."
    ),
    "sms": (
        "I agree to receive text messages (SMS) with offers and order updates from this store at the "
        "number I gave. Message and data rates may apply. Reply STOP to end them."
    ),
}
CONSENT_KINDS: tuple[ConsentKind, ...] = ("profile", "marketing", "sms")
GROUPS = ("veteran", "senior", "staff", "industry", "student")

_PHONE_DIGITS = re.compile(r"\d")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,24}$")
_TOKEN = re.compile(r"[0-9a-z]+")


class EnrolForm(msgspec.Struct, frozen=True, kw_only=True):
    """What the customer confirms at enrolment (the licence gives the rest)."""

    phone: str = ""
    email: str = ""
    consent_profile: bool = False
    consent_marketing: bool = False
    consent_sms: bool = False
    groups: tuple[str, ...] = ()
    note: str = ""


class LicenceFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What enrolment takes from a scanned licence (the number only as its keyed hash)."""

    id_hash: str
    given_name: str
    family_name: str
    birth_date: date
    expires_on: date | None
    jurisdiction: str


def normalize_phone(raw: str) -> str | Refusal:
    """North American numbers as +1 and ten digits; others as + and their digits (8 to 15)."""
    raw = raw.strip()
    digits = "".join(_PHONE_DIGITS.findall(raw))
    if raw.startswith("+") and not raw.startswith("+1"):
        if 8 <= len(digits) <= 15:
            return "+" + digits
    elif len(digits) == 10:
        return "+1" + digits
    elif len(digits) == 11 and digits.startswith("1"):
        return "+" + digits
    return Refusal(
        code="bad_phone", message=f"{raw!r} is not a phone number (10 digits, or + and the country code)."
    )


def normalize_email(raw: str) -> str | Refusal:
    e = raw.strip()
    if not _EMAIL.match(e):
        return Refusal(code="bad_email", message=f"{raw!r} is not an e-mail address.")
    local, _, domain = e.rpartition("@")
    return f"{local}@{domain.lower()}"


def keyed_hash(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def phone_hash(key: bytes, phone: str) -> str:
    """The keyed hash a phone number is found by; ``phone`` already normalized."""
    return keyed_hash(key, "phone", phone)


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def name_tokens(*parts: str) -> list[str]:
    out: list[str] = []
    for p in parts:
        out.extend(t for t in _TOKEN.findall(fold(p)) if t not in out)
    return out


def title(name: str) -> str:
    return " ".join(w.capitalize() for w in name.strip().split())


def latest_consent(customer: Customer, kind: str) -> Consent | None:
    found = [c for c in customer.consents if c.kind == kind]
    return max(found, key=lambda c: c.at) if found else None


def has_consent(customer: Customer, kind: str) -> bool:
    c = latest_consent(customer, kind)
    return c is not None and c.granted


def may_text(customer: Customer) -> bool:
    """An SMS goes only to a customer whose last answer to the SMS consent was yes, at a number we kept."""
    return bool(customer.phone) and has_consent(customer, "sms") and not customer.merged_into


def may_email(customer: Customer) -> bool:
    return bool(customer.email) and has_consent(customer, "marketing") and not customer.merged_into


def consents_from(form: EnrolForm, *, staff: str, where: str, now: datetime) -> tuple[Consent, ...]:
    answers = {"profile": form.consent_profile, "marketing": form.consent_marketing, "sms": form.consent_sms}
    return tuple(
        Consent(kind=k, granted=answers[k], text=CONSENT_TEXTS[k], at=now, staff=staff, where=where)
        for k in CONSENT_KINDS
    )


def enrol(
    licence: LicenceFacts,
    form: EnrolForm,
    *,
    key: bytes,
    staff: str,
    where: str,
    now: datetime,
    customer_type: str = "adult",
    existing: Customer | None = None,
    new_id: str,
) -> Customer | Refusal:
    """The customer record to keep for this licence and form, or why none may be kept.

    An existing record for the same licence is updated (new answers are added to the consent history,
    contact details follow the new answers), never duplicated."""
    if not form.consent_profile:
        return Refusal(
            code="no_consent",
            message="Without the customer's consent to keep a profile the store keeps no record (the sale "
            "can still go ahead).",
        )
    if form.consent_sms and not form.phone.strip():
        return Refusal(code="bad_phone", message="SMS consent needs the phone number the texts go to.")
    if form.consent_marketing and not (form.email.strip() or form.phone.strip()):
        return Refusal(
            code="bad_email", message="Marketing consent needs an e-mail address or a phone number."
        )
    phone = ""
    if form.phone.strip():
        p = normalize_phone(form.phone)
        if isinstance(p, Refusal):
            return p
        phone = p
    email = ""
    if form.email.strip():
        e = normalize_email(form.email)
        if isinstance(e, Refusal):
            return e
        email = e
    unknown = [g for g in form.groups if g not in GROUPS]
    if unknown:
        return Refusal(
            code="bad_group", message=f"Unknown customer group {unknown[0]!r}; one of {', '.join(GROUPS)}."
        )
    consents = consents_from(form, staff=staff, where=where, now=now)
    # contact details only with a consent to be contacted on them
    kept_phone = phone if (form.consent_sms or form.consent_marketing) else ""
    kept_email = email if form.consent_marketing else ""
    notes = (CustomerNote(text=form.note.strip()[:500], at=now, staff=staff),) if form.note.strip() else ()
    base = existing or Customer(
        id=new_id,
        customer_type="medical" if customer_type == "medical" else "adult",
        residency=licence.jurisdiction,
        birth_date=licence.birth_date,
        id_hash=licence.id_hash,
    )
    return msgspec.structs.replace(
        base,
        id_expires_on=licence.expires_on,
        consent_to_retain=True,
        display_name=title(licence.given_name),
        family_name=title(licence.family_name),
        phone_hash=phone_hash(key, phone) if phone else base.phone_hash,
        phone=kept_phone,
        email=kept_email,
        consents=base.consents + consents,
        notes=base.notes + notes,
        groups=tuple(sorted(set(form.groups) | set(base.groups))) if form.groups else base.groups,
        enrolled_at=base.enrolled_at or now,
        enrolled_by=base.enrolled_by or staff,
        merged_into="",
    )


def change_consent(
    customer: Customer, kind: ConsentKind, granted: bool, *, staff: str, where: str, now: datetime
) -> Customer:
    """A later answer (e.g. "stop texting me"): recorded, and the contact detail it covered dropped."""
    c = Consent(kind=kind, granted=granted, text=CONSENT_TEXTS[kind], at=now, staff=staff, where=where)
    updated = msgspec.structs.replace(customer, consents=customer.consents + (c,))
    if not has_consent(updated, "marketing"):
        updated = msgspec.structs.replace(updated, email="")
        if not has_consent(updated, "sms"):
            updated = msgspec.structs.replace(updated, phone="")
    return updated


def merge(
    keep: Customer, duplicate: Customer, *, staff: str, now: datetime
) -> tuple[Customer, Customer] | Refusal:
    """Fold ``duplicate`` into ``keep``: points and history add up, consents and notes are kept in time
    order, contact details come from the record that has them. Two people are never merged: the dates
    of birth must agree. Returns (the kept record, the duplicate marked merged)."""
    if keep.id == duplicate.id:
        return Refusal(code="same_customer", message="That is the same customer record.")
    if duplicate.merged_into:
        return Refusal(
            code="already_merged", message=f"{duplicate.id} was already merged into {duplicate.merged_into}."
        )
    if keep.birth_date != duplicate.birth_date:
        return Refusal(
            code="different_people",
            message="The dates of birth differ: these are two different people, not a duplicate.",
        )
    consents = tuple(sorted(keep.consents + duplicate.consents, key=lambda c: c.at))
    note = CustomerNote(text=f"Merged duplicate record {duplicate.id}.", at=now, staff=staff)
    merged = msgspec.structs.replace(
        keep,
        loyalty_points=keep.loyalty_points + duplicate.loyalty_points,
        lifetime_points=keep.lifetime_points + duplicate.lifetime_points,
        consents=consents,
        notes=tuple(sorted(keep.notes + duplicate.notes, key=lambda n: n.at)) + (note,),
        groups=tuple(sorted(set(keep.groups) | set(duplicate.groups))),
        phone=keep.phone or duplicate.phone,
        phone_hash=keep.phone_hash or duplicate.phone_hash,
        email=keep.email or duplicate.email,
        consent_to_retain=keep.consent_to_retain or duplicate.consent_to_retain,
        display_name=keep.display_name or duplicate.display_name,
        family_name=keep.family_name or duplicate.family_name,
        enrolled_at=min((d for d in (keep.enrolled_at, duplicate.enrolled_at) if d), default=None),
        last_visit_at=max((d for d in (keep.last_visit_at, duplicate.last_visit_at) if d), default=None),
    )
    # contact details must still be covered by the merged answers
    if not has_consent(merged, "marketing"):
        merged = msgspec.structs.replace(merged, email="")
        if not has_consent(merged, "sms"):
            merged = msgspec.structs.replace(merged, phone="")
    gone = msgspec.structs.replace(
        duplicate, merged_into=keep.id, loyalty_points=0, phone="", email="", display_name="", family_name=""
    )
    return merged, gone


def last_activity(customer: Customer) -> datetime | None:
    seen = [d for d in (customer.last_visit_at, customer.enrolled_at) if d is not None]
    return max(seen) if seen else None


def due_for_purge(customer: Customer, *, profile_days: int, now: datetime) -> bool:
    """True when the jurisdiction's retention period has passed since the customer's last visit (or
    enrolment); a merged duplicate goes once the same period has passed. A record without any date (an
    old import) is left for a person to judge."""
    if profile_days <= 0:
        return False
    last = last_activity(customer)
    return last is not None and now - last > timedelta(days=profile_days)


def purge_list(customers: Iterable[Customer], *, profile_days: int, now: datetime) -> list[Customer]:
    return [c for c in customers if due_for_purge(c, profile_days=profile_days, now=now)]


def public_view(customer: Customer, *, medical_allowed: bool) -> dict[str, object]:
    """The profile as staff see it; medical details only to roles that need them (DESIGN.md)."""
    consents = {
        k: (latest_consent(customer, k) is not None and has_consent(customer, k)) for k in CONSENT_KINDS
    }
    view: dict[str, object] = {
        "id": customer.id,
        "name": " ".join(p for p in (customer.display_name, customer.family_name) if p),
        "customer_type": customer.customer_type
        if medical_allowed
        else ("adult" if customer.customer_type == "adult" else "—"),
        "birth_date": customer.birth_date.isoformat(),
        "residency": customer.residency,
        "phone": customer.phone,
        "email": customer.email,
        "has_phone": bool(customer.phone_hash),
        "points": customer.loyalty_points,
        "lifetime_points": customer.lifetime_points,
        "groups": list(customer.groups),
        "consents": consents,
        "consent_history": [msgspec.to_builtins(c) for c in customer.consents],
        "notes": [msgspec.to_builtins(n) for n in customer.notes],
        "enrolled_at": customer.enrolled_at.isoformat() if customer.enrolled_at else None,
        "enrolled_by": customer.enrolled_by,
        "last_visit_at": customer.last_visit_at.isoformat() if customer.last_visit_at else None,
        "merged_into": customer.merged_into,
        "may_text": may_text(customer),
        "may_email": may_email(customer),
    }
    if medical_allowed:
        view["medical_registration"] = customer.medical_registration
    return view
