from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from hub.domain.aamva import DriverLicence
from hub.domain.identity import MedicalRegistration, RegistryAnswer, age_on, check_in
from hub.domain.items import LimitAttributes
from hub.domain.limits import LimitItem, evaluate

DENVER = ZoneInfo("America/Denver")


def licence(
    *, born: date = date(1990, 5, 1), expires: date = date(2030, 5, 1), state: str = "CO"
) -> DriverLicence:
    return DriverLicence(
        document_type="DL",
        document_number="123456789",
        family_name="DOE",
        given_name="JANE",
        date_of_birth=born,
        expiry=expires,
        jurisdiction=state,
        iin="636020",
        aamva_version=10,
    )


NOW = datetime(2025, 6, 14, 12, 0, tzinfo=DENVER)
CO_CARD = MedicalRegistration(number="CO-1", jurisdiction="CO", expires=date(2026, 10, 31))
ACTIVE = RegistryAnswer(status="active")


def codes(decision):
    return [r.code for r in decision.refusals]


def test_adult_resident_of_legal_age():
    d = check_in(licence(), jurisdiction="CO", customer_type="adult", now=NOW)
    assert d.allowed and d.customer_class == "adult" and d.resident
    assert d.age == 35
    assert d.limit_customer is not None and d.limit_customer.customer_class == "adult"


def test_twenty_first_birthday_is_the_first_day_allowed():
    born = date(2004, 6, 14)
    d = check_in(licence(born=born), jurisdiction="CO", customer_type="adult", now=NOW)
    assert d.allowed and d.age == 21
    d = check_in(licence(born=date(2004, 6, 15)), jurisdiction="CO", customer_type="adult", now=NOW)
    assert not d.allowed
    assert d.refusals[0].message == "Customer is 20; adult-use sales in Colorado need 21 or older."


def test_leap_day_birthday_turns_over_on_march_first():
    born = date(2004, 2, 29)
    assert age_on(born, date(2025, 2, 28)) == 20
    assert age_on(born, date(2025, 3, 1)) == 21
    assert age_on(born, date(2028, 2, 29)) == 24


def test_age_and_expiry_use_the_stores_local_date_not_utc():
    # 23:30 in Denver on 13 June is already 14 June in UTC.
    late = datetime(2025, 6, 13, 23, 30, tzinfo=DENVER)
    assert late.astimezone(UTC).date() == date(2025, 6, 14)
    d = check_in(licence(born=date(2004, 6, 14)), jurisdiction="CO", customer_type="adult", now=late)
    assert codes(d) == ["under-age"]
    d = check_in(licence(expires=date(2025, 6, 13)), jurisdiction="CO", customer_type="adult", now=late)
    assert d.allowed, "an ID is valid through its expiry date"


def test_expired_id_is_refused_in_words():
    d = check_in(licence(expires=date(2025, 6, 13)), jurisdiction="CO", customer_type="adult", now=NOW)
    assert not d.allowed
    assert d.refusals[0].message == "ID expired on 2025-06-13: ask for a current ID."
    assert d.limit_customer is None


def test_residency_from_the_ids_jurisdiction():
    d = check_in(licence(state="WI"), jurisdiction="IL", customer_type="adult", now=NOW)
    assert d.allowed and not d.resident and d.customer_class == "adult-nonresident"
    d = check_in(licence(state="IL"), jurisdiction="IL", customer_type="adult", now=NOW)
    assert d.customer_class == "adult"


def test_medical_only_state_refuses_adult_use():
    d = check_in(licence(state="FL"), jurisdiction="FL", customer_type="adult", now=NOW)
    assert "no-adult-use" in codes(d)


def test_colorado_medical_18_to_20_gets_the_2_g_tier():
    d = check_in(
        licence(born=date(2005, 1, 1)),
        jurisdiction="CO",
        customer_type="medical",
        now=NOW,
        registration=CO_CARD,
        registry=ACTIVE,
    )
    assert d.allowed and d.age == 20
    limits = evaluate(
        "CO",
        d.limit_customer,
        [],
        [LimitItem(attributes=LimitAttributes(category="concentrate", net_weight_mg=2_001))],
        NOW,
    )
    assert [v.rule for v in limits.violations] == ["co-med-concentrate-under-21"]


def test_medical_patient_under_18_must_come_through_a_caregiver():
    d = check_in(
        licence(born=date(2008, 1, 1)),
        jurisdiction="CO",
        customer_type="medical",
        now=NOW,
        registration=CO_CARD,
        registry=ACTIVE,
    )
    assert codes(d) == ["under-age"]
    assert "caregiver" in d.refusals[0].message


def test_caregiver_for_a_minor_patient():
    d = check_in(
        licence(),
        jurisdiction="CO",
        customer_type="caregiver",
        now=NOW,
        registration=CO_CARD,
        registry=ACTIVE,
        patient_age=12,
    )
    assert d.allowed and d.customer_class == "minor-patient"
    assert d.limit_customer.age == 12


def test_medical_registration_expired_message():
    card = MedicalRegistration(number="CO-1", jurisdiction="CO", expires=date(2026, 10, 31))
    d = check_in(
        licence(),
        jurisdiction="CO",
        customer_type="medical",
        now=datetime(2026, 11, 1, 9, 0, tzinfo=DENVER),
        registration=card,
        registry=ACTIVE,
    )
    assert d.refusals[0].message == "Medical registration expired on 2026-10-31: renew in the state portal."


def test_registry_expiry_overrides_a_newer_card():
    d = check_in(
        licence(),
        jurisdiction="CO",
        customer_type="medical",
        now=NOW,
        registration=CO_CARD,
        registry=RegistryAnswer(status="active", expires=date(2025, 6, 1)),
    )
    assert codes(d) == ["registration-expired"]


@pytest.mark.parametrize(
    "registration, registry, code",
    [
        (None, ACTIVE, "no-registration"),
        (CO_CARD, RegistryAnswer(status="inactive"), "registration-inactive"),
        (CO_CARD, RegistryAnswer(status="not-found"), "registration-not-found"),
        (CO_CARD, RegistryAnswer(status="unreachable"), "registry-unreachable"),
        (CO_CARD, None, "registry-unreachable"),
        (
            MedicalRegistration(number="X", jurisdiction="AZ", expires=date(2027, 1, 1)),
            ACTIVE,
            "out-of-state-registration",
        ),
    ],
)
def test_medical_refusals(registration, registry, code):
    d = check_in(
        licence(),
        jurisdiction="CO",
        customer_type="medical",
        now=NOW,
        registration=registration,
        registry=registry,
    )
    assert code in codes(d)
    assert not d.allowed


def test_registry_unreachable_policy_is_per_jurisdiction():
    card = MedicalRegistration(number="AZ-1", jurisdiction="AZ", expires=date(2027, 1, 1))
    d = check_in(
        licence(state="AZ"),
        jurisdiction="AZ",
        customer_type="medical",
        now=NOW,
        registration=card,
        registry=RegistryAnswer(status="unreachable"),
    )
    assert d.allowed
    assert any("unreachable" in w for w in d.warnings)
    # PA requires the state system first (28 Pa. Code 1161a.24).
    d = check_in(
        licence(state="PA"),
        jurisdiction="PA",
        customer_type="medical",
        now=NOW,
        registration=MedicalRegistration(number="PA-1", jurisdiction="PA", expires=date(2027, 1, 1)),
        registry=RegistryAnswer(status="unreachable"),
    )
    assert codes(d) == ["registry-unreachable"]
    assert "1161a.24" in d.refusals[0].message


def test_unserved_medical_class_is_refused():
    d = check_in(
        licence(state="NV"),
        jurisdiction="NV",
        customer_type="medical",
        now=NOW,
        registration=MedicalRegistration(number="N", jurisdiction="NV", expires=date(2027, 1, 1)),
    )
    assert not d.allowed


def test_retention_follows_the_state():
    oregon = check_in(licence(state="OR"), jurisdiction="OR", customer_type="adult", now=NOW).retention
    assert oregon.keep == [] and oregon.consent_required_for_profile
    mass = check_in(licence(state="MA"), jurisdiction="MA", customer_type="adult", now=NOW).retention
    assert "name" not in mass.keep and "date-of-birth" in mass.keep
    assert "500.140(2)" in mass.source
    adult = check_in(licence(), jurisdiction="CO", customer_type="adult", now=NOW).retention
    assert "medical-registration-hash" not in adult.keep
    patient = check_in(
        licence(), jurisdiction="CO", customer_type="medical", now=NOW, registration=CO_CARD, registry=ACTIVE
    ).retention
    assert "medical-registration-hash" in patient.keep


def test_bad_inputs_are_programming_errors():
    with pytest.raises(ValueError):
        check_in(licence(), jurisdiction="CO", customer_type="tourist", now=NOW)
    with pytest.raises(ValueError):
        check_in(licence(), jurisdiction="CO", customer_type="adult", now=datetime(2025, 6, 14))
