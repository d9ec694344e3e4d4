import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.aamva import AamvaError, parse_licence

# reference/devices.md §3: the benhovinga/aamva_barcode_library README example (VA, version 10).
VA = (
    "@\n\x1e\rANSI 636000100102DL00410278ZV03190008DLDAQT64235789\nDCSSAMPLE\nDDEN\nDACMICHAEL\nDDFN\n"
    "DADJOHN\nDDGN\nDCUJR\nDCAD\nDCBK\nDCDPH\nDBD06062019\nDBB06061986\nDBA12102024\nDBC1\nDAU068 in\n"
    "DAYBRO\nDAG2300 WEST BROAD STREET\nDAIRICHMOND\nDAJVA\nDAK232690000  \nDCF2424244747474786102204\n"
    "DCGUSA\nDCK123456789\nDDAF\nDDB06062018\nDDC06062020\nDDD1\rZVZVA01\r"
)
# reference/devices.md §3: old MD card, file type "AAMVA", version 01, DAA full name, CCYYMMDD dates
# (winfinit/aamvajs test fixture).
MD = (
    "@\n\x1e\rAAMVA6360030101DL00290192DLDAQK-134-123-145-103\nDAAJOHNSON,JACK,,3RD\n"
    "DAG1234 BARNEYS INN PL\nDAIBALTIMORE\nDAJMD\nDAK21230 \nDARC \nDAS \nDAT \nDAU505\nDAW135\n"
    "DBA20170209\nDBB19910209\nDBC1\nDBD20120210\nDBHN\r"
)
# Same fixture set: SC v01 with FS (0x1C) instead of RS in the header and a DL offset one off.
SC = (
    "@\n\x1c\rANSI 6360050101DL00300201DLDAQ102245737\nDAASAMPLE,DRIVER,CREDENTIAL,\nDAG1500 PARK ST\n"
    "DAICOLUMBIA\nDAJSC\nDAK292012731  \nDARD   \nDAS          \nDAT     \nDAU600\nDAW200\nDAY   \n"
    "DAZ   \nDBA20190928\nDBB19780928\nDBC1\nDBD20091026\nDBG2\nDBH1\r\r\n"
)


def test_reference_example_from_serial_bytes():
    lic = parse_licence(VA.encode("latin-1"))
    assert lic.document_type == "DL"
    assert lic.document_number == "T64235789"
    assert (lic.family_name, lic.given_name, lic.middle_name) == ("SAMPLE", "MICHAEL", "JOHN")
    assert lic.date_of_birth == date(1986, 6, 6)
    assert lic.expiry == date(2024, 12, 10)
    assert lic.issue_date == date(2019, 6, 6)
    assert lic.jurisdiction == "VA"
    assert lic.postal_code == "23269"
    assert lic.country == "USA"
    assert lic.sex == "M"
    assert lic.real_id is True
    assert (lic.iin, lic.aamva_version, lic.jurisdiction_version) == ("636000", 10, 1)
    assert lic.warnings == ()


def test_old_aamva_file_type_with_canadian_style_dates():
    lic = parse_licence(MD.encode())
    assert (lic.family_name, lic.given_name, lic.middle_name) == ("JOHNSON", "JACK", "")
    assert lic.date_of_birth == date(1991, 2, 9)
    assert lic.expiry == date(2017, 2, 9)
    assert lic.issue_date == date(2012, 2, 10)
    assert lic.aamva_version == 1 and lic.jurisdiction_version is None
    assert lic.jurisdiction == "MD" and lic.postal_code == "21230"
    # Version 1 implies MMDDCCYY; the card contradicts it, which we accept and say.
    assert any("CCYYMMDD" in w for w in lic.warnings)


def test_nonstandard_separator_and_offset_are_repaired_with_warnings():
    lic = parse_licence(SC.encode())
    assert lic.document_number == "102245737"
    assert lic.date_of_birth == date(1978, 9, 28)
    assert lic.postal_code == "29201-2731"
    assert any("offset" in w for w in lic.warnings)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.replace("\r", "\n").replace("\x1e", ""),  # Enter for CR and LF, RS dropped
        lambda s: s.replace("\r", "\r\n").replace("\x1e", "\n"),  # CRLF per Enter, RS as Enter
        lambda s: s.replace("\n", "<LF>").replace("\r", "<CR>").replace("\x1e", "<RS>"),
        lambda s: s.replace("\n", "Control J").replace("\r", "Control M").replace("\x1e", ""),
        lambda s: "]L2" + s,  # AIM symbology prefix
    ],
)
def test_keyboard_wedge_captures_that_are_recoverable(mangle):
    lic = parse_licence(mangle(VA))
    assert lic.document_number == "T64235789"
    assert lic.date_of_birth == date(1986, 6, 6)
    assert lic.jurisdiction == "VA"
    assert lic.middle_name == "JOHN"


def test_wedge_with_separators_dropped_is_refused_not_guessed():
    with pytest.raises(AamvaError) as err:
        parse_licence(VA.replace("\n", "").replace("\r", "").replace("\x1e", ""))
    assert err.value.code == "separators-lost"
    assert "serial" in str(err.value)


def test_wedge_cut_at_first_enter():
    with pytest.raises(AamvaError) as err:
        parse_licence("@\n")
    assert err.value.code == "truncated"


@pytest.mark.parametrize("cut", [30, 60, 120, 200])
def test_truncated_serial_payload(cut):
    with pytest.raises(AamvaError) as err:
        parse_licence(VA.encode()[:cut])
    assert err.value.code in {"truncated", "missing-field", "bad-header"}
    assert "scan" in str(err.value).lower()


def test_designators_out_of_order_with_data():
    bad = VA.replace("DL00410278ZV03190008", "ZV03190008DL00410278").replace("\rZVZVA01\r", "\r")
    with pytest.raises(AamvaError) as err:
        parse_licence(bad.encode())
    assert "out of order" in str(err.value)


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"", "empty"),
        (b"1A4FF0300000387000000123", "not-aamva"),  # a Metrc package tag scanned at check-in
        (b"@\n\x1e\rHELLO 636000100102", "not-aamva"),
        (b"@\n\x1e\rANSI 636000990102DL00410278", "unsupported-version"),
        (VA.replace("DBB06061986", "DBB13401986").encode(), "bad-date"),
        (VA.replace("DAQT64235789\n", "").encode(), "missing-field"),
        (VA.replace("DBB06061986", "DBB19860606").encode(), "ambiguous-date"),  # mixed formats
    ],
)
def test_clear_errors(payload, code):
    with pytest.raises(AamvaError) as err:
        parse_licence(payload)
    assert err.value.code == code
    assert isinstance(err.value, ValueError)
    assert len(str(err.value)) > 20


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_anything_but_aamva_error(data):
    try:
        parse_licence(data)
    except AamvaError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(VA)), st.integers(min_value=0, max_value=len(VA)))
def test_damaged_reference_payload_never_crashes(a, b):
    lo, hi = sorted((a, b))
    try:
        parse_licence(VA[:lo] + VA[hi:])
    except AamvaError:
        pass


# --------------------------------------------------------------------------- public samples (issue 18)

FIXTURES = Path(__file__).parent / "fixtures" / "aamva"


def _samples(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())["samples"]


PUBLIC = _samples("idparser_samples.json") + _samples("py_aamva_vectors.json")


def _check(lic, expected: dict) -> None:
    got = {
        "given_name": lic.given_name,
        "middle_name": lic.middle_name,
        "family_name": lic.family_name,
        "document_number": lic.document_number,
        "date_of_birth": lic.date_of_birth.isoformat(),
        "expiry": lic.expiry.isoformat(),
    }
    for field, want in expected.items():
        if want is None:
            continue  # the other parser's test asserts nothing here
        # IdParser keeps the card's case ("Michael"); we compare as printed, ignoring case only
        assert got[field].upper() == want.upper(), (field, got[field], want)


@pytest.mark.parametrize("sample", PUBLIC, ids=[s["name"] for s in PUBLIC])
def test_public_sample_read_as_typed_text(sample):
    """Every sample the other parsers read is read, with the same name, dates and number."""
    _check(parse_licence(sample["payload"]), sample["expected"])


@pytest.mark.parametrize("sample", PUBLIC, ids=[s["name"] for s in PUBLIC])
def test_public_sample_read_as_serial_bytes(sample):
    _check(parse_licence(sample["payload"].encode("utf-8")), sample["expected"])


def test_public_samples_cover_versions_and_jurisdictions():
    versions, iins = set(), set()
    for payload in [s["payload"] for s in PUBLIC] + [VA]:  # VA: version 10 (benhovinga README)
        lic = parse_licence(payload)
        versions.add(lic.aamva_version)
        iins.add(lic.iin)
    assert versions == set(range(1, 11))
    assert len(iins) >= 45


def _sample(name: str) -> str:
    return next(s["payload"] for s in PUBLIC if s["name"] == name)


def test_old_connecticut_and_west_virginia_without_dl_prefix():
    for name in ("CT", "WV"):
        lic = parse_licence(_sample(name))
        assert any("does not start with its type" in w for w in lic.warnings)
    assert parse_licence(_sample("CT")).family_name == "CTLIC"


def test_alberta_letters_for_offsets():
    lic = parse_licence(_sample("AB"))
    assert (lic.family_name, lic.document_number, lic.country) == ("MOTORIST", "123400-056", "CAN")
    assert any("not numbers" in w for w in lic.warnings)


def test_puerto_rico_filler_and_pdf417_control_codes_are_skipped():
    assert parse_licence(_sample("PR")).family_name == "ORTIZ ORTIZ"
    lic = parse_licence(_sample("aamva_v1 (ends in PDF417 control codes)"))
    assert any("not fields" in w for w in lic.warnings)


def test_pennsylvania_v01_full_name_is_given_names_then_family():
    lic = parse_licence(_sample("PA"))
    assert (lic.family_name, lic.given_name, lic.middle_name) == ("SMITH", "JOHN", "P")


def test_ontario_family_name_without_trailing_comma():
    assert parse_licence(_sample("ON")).family_name == "TESTER"


def test_serial_capture_missing_rs_is_read_and_not_blamed_on_wedge_mode():
    from hub.domain.scan_classify import classify

    raw = VA.replace("\x1e", "")
    lic = parse_licence(raw.encode())
    assert lic.document_number == "T64235789"
    c = classify(raw)
    assert c.kind == "aamva" and c.valid


def test_run_together_fields_blame_the_wedge_only_when_typed():
    run_together = VA.replace("\n", "").replace("\r", "").replace("\x1e", "")
    with pytest.raises(AamvaError) as typed:
        parse_licence(run_together)
    assert "driver's licence" in str(typed.value) and "keyboard" in str(typed.value)
    # The same damage from a serial scanner (bytes) is not its mode: rescan, or check by eye.
    serial = ("@\n\x1e\r" + run_together[1:]).encode()
    with pytest.raises(AamvaError) as raw:
        parse_licence(serial)
    assert raw.value.code in ("separators-lost", "truncated")
    assert "keyboard" not in str(raw.value) and "scan it again" in str(raw.value).lower()


def test_mangled_start_is_a_damaged_licence_not_a_fake():
    with pytest.raises(AamvaError) as err:
        parse_licence("@\n\x1e\rxxxxxxxANSI 636000100102DL00410278ZV03190008DLDAQT1")
    assert err.value.code == "bad-header"
    assert "not a driver" not in str(err.value)
