from datetime import date

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
