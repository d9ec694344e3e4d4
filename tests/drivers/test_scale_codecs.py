"""Scale codecs: bytes in, frames out, for each protocol."""

from __future__ import annotations

import pytest

from drivers.scales import (
    PROTOCOLS,
    CommandReply,
    FrameError,
    WeightFrame,
    ad,
    codec_for,
    mt_sics,
    nci,
    ohaus,
    to_mg,
)


def weights(events):
    return [(e.weight_mg, e.state) for e in events if isinstance(e, WeightFrame)]


def errors(events):
    return [e for e in events if isinstance(e, FrameError)]


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("number", "unit", "mg"),
    [
        ("+0012.345", "g", 12345),
        ("  3.50", "g", 3500),
        ("-0.01", "g", -10),
        ("0.028", "kg", 28000),
        ("1.000", "oz", 28350),  # 28349.523125 mg rounds half-even to 28350
        ("0.0625", "lb", 28350),
        ("5.00", "ct", 1000),
        ("1", "GM", 1000),
    ],
)
def test_to_mg(number, unit, mg):
    assert to_mg(number, unit) == mg


@pytest.mark.parametrize(("number", "unit"), [("", "g"), ("1.2.3", "g"), ("12", "furlong"), ("+", "g")])
def test_to_mg_refuses(number, unit):
    with pytest.raises(ValueError):
        to_mg(number, unit)


def test_registry_by_name():
    assert set(PROTOCOLS) == {"ad", "mt-sics", "nci", "ohaus"}
    assert isinstance(codec_for("MT-SICS"), mt_sics.MTSICSCodec)
    with pytest.raises(ValueError, match="choose one of"):
        codec_for("adam")


def test_serial_defaults():
    assert codec_for("nci").serial_defaults.bytesize == 7
    assert codec_for("nci").serial_defaults.parity == "E"
    assert codec_for("mt-sics").serial_defaults.parity == "N"


# --------------------------------------------------------------------------- A&D


def test_ad_stable_unstable_overload():
    c = ad.ADCodec()
    ev = c.feed(b"ST,+00012.345  g\r\nUS,+00012.400  g\r\nOL,+9999999E+19\r\n")
    assert weights(ev) == [(12345, "stable"), (12400, "motion"), (0, "overload")]
    assert not errors(ev)


def test_ad_frame_split_across_reads_and_negative():
    c = ad.ADCodec()
    assert c.feed(b"ST,-000") == []
    ev = c.feed(b"01.230  g\r")
    assert ev == []
    ev = c.feed(b"\nST,+00000.500 ct\r\n")
    assert weights(ev) == [(-1230, "stable"), (100, "stable")]


def test_ad_encoder_roundtrip():
    c = ad.ADCodec()
    assert ad.encode_weight(3500, stable=True) == b"ST,+0003.500  g\r\n"
    assert weights(c.feed(ad.encode_weight(3500, stable=False))) == [(3500, "motion")]


def test_ad_ack_and_error_attributed_to_command():
    # FX-i manual §15-2: Z/T are acknowledged on receipt and again on completion, or EC,E11. The first
    # ACK is not "done" (the old reading of it as done was wrong: issue 18).
    c = ad.ADCodec()
    c.note_sent("zero")
    c.note_sent("tare")
    ev = c.feed(b"\x06\r\n\x06\r\n\x06\r\nEC,E11\r\n")
    assert ev[0] == CommandReply("zero", True, "received", b"\x06", final=False)
    assert ev[1] == CommandReply("zero", True, "done", b"\x06")
    assert ev[2] == CommandReply("tare", True, "received", b"\x06", final=False)
    assert isinstance(ev[3], CommandReply) and ev[3].command == "tare" and not ev[3].ok and ev[3].final
    assert "stability" in ev[3].detail
    # an unsolicited error is an error reading, not a crash
    assert weights(c.feed(b"EC,E02\r\n")) == [(0, "error")]


def test_ad_garbage_and_counting_mode_are_errors():
    c = ad.ADCodec()
    ev = c.feed(b"\xff\xfe\x00zz\r\nQT,+00000012 PC\r\nST,+0001.000  g\r\n")
    assert len(errors(ev)) == 2
    assert weights(ev) == [(1000, "stable")]


def test_ad_runaway_garbage_without_terminator_is_dropped():
    c = ad.ADCodec()
    ev = c.feed(b"x" * 500)
    assert len(errors(ev)) == 1
    assert weights(c.feed(b"ST,+0002.000  g\r\n")) == [(2000, "stable")]


# --------------------------------------------------------------------------- MT-SICS


def test_mt_sics_stable_dynamic_over_under():
    c = mt_sics.MTSICSCodec()
    ev = c.feed(b"S S     100.00 g\r\nS D     100.02 g\r\nS +\r\nS -\r\nS I\r\n")
    assert weights(ev) == [
        (100000, "stable"),
        (100020, "motion"),
        (0, "overload"),
        (0, "underload"),
        (0, "error"),
    ]


def test_mt_sics_requests():
    c = mt_sics.MTSICSCodec()
    assert c.poll_request == b"SI\r\n"
    assert c.zero_request == b"Z\r\n"
    assert c.tare_request == b"T\r\n"


def test_mt_sics_zero_and_tare_replies():
    c = mt_sics.MTSICSCodec()
    c.note_sent("zero")
    ev = c.feed(b"Z A\r\nZ +\r\nT S      12.50 g\r\nT I\r\n")
    assert [(e.command, e.ok) for e in ev] == [
        ("zero", True),
        ("zero", False),
        ("tare", True),
        ("tare", False),
    ]
    assert ev[1].detail == "upper limit exceeded"


def test_mt_sics_syntax_error_reply_and_garbage():
    c = mt_sics.MTSICSCodec()
    c.note_sent("tare")
    ev = c.feed(b"ES\r\n")
    assert ev == [CommandReply("tare", False, "syntax error", b"ES")]
    ev = c.feed(b"S S  abc g\r\nhello\r\n\x80\x81\r\n")
    assert len(errors(ev)) == 3


def test_mt_sics_encoder():
    assert mt_sics.encode_weight(3500, stable=True) == b"S S       3.50 g\r\n"


# --------------------------------------------------------------------------- NCI


def test_nci_weight_and_status_bits():
    c = nci.NCICodec()
    ev = c.feed(b"\n  3.50GM\r00\x03" + b"\n  3.52GM\r10\x03")
    assert weights(ev) == [(3500, "stable"), (3520, "motion")]


def test_nci_over_and_under_capacity():
    c = nci.NCICodec()
    ev = c.feed(b"\n^^^^^^^GM\r02\x03\n_______GM\r01\x03")
    assert weights(ev) == [(0, "overload"), (0, "underload")]


def test_nci_parity_bit_is_stripped():
    # the same frame as a 7E1 device sends it to a port opened 8N1: even parity in bit 7
    def even(b: int) -> int:
        return b | 0x80 if bin(b).count("1") % 2 else b

    frame = bytes(even(b) for b in b"\n  1.00LB\r00\x03")
    assert frame != b"\n  1.00LB\r00\x03"
    assert weights(nci.NCICodec().feed(frame)) == [(453592, "stable")]


def test_nci_split_reads_and_leading_garbage():
    c = nci.NCICodec()
    assert c.feed(b"junk\n  0.5") == [FrameError("bytes outside a frame", b"junk")]
    assert weights(c.feed(b"0KG\r00\x03")) == [(500000, "stable")]


def test_nci_unknown_command_and_zero_reply():
    c = nci.NCICodec()
    c.note_sent("tare")
    ev = c.feed(b"\n?\r")
    assert ev == [CommandReply("tare", False, "scale does not know this command")]
    c.note_sent("zero")
    ev = c.feed(b"\n20\r\x03")
    assert isinstance(ev[0], CommandReply) and ev[0].command == "zero" and ev[0].ok


def test_nci_fault_bits_are_error_state():
    c = nci.NCICodec()
    assert weights(c.feed(b"\n  1.00GM\r40\x03".replace(b"40", bytes([0x34, 0x30])))) == [(0, "error")]


def test_nci_bad_status_bytes_counted():
    c = nci.NCICodec()
    ev = c.feed(b"\n  1.00GM\rzz\x03")
    assert len(errors(ev)) == 1


def test_nci_encoder_roundtrip():
    c = nci.NCICodec()
    assert weights(c.feed(nci.encode_weight(12340, motion=True))) == [(12340, "motion")]
    assert weights(c.feed(nci.encode_capacity(over=True))) == [(0, "overload")]


# --------------------------------------------------------------------------- Ohaus


def test_ohaus_stable_and_unstable():
    c = ohaus.OhausCodec()
    ev = c.feed(b"     192.21 g  \r\n       0.01 g ?\r\n    176.30 g ? 00:00:15\r\n")
    assert weights(ev) == [(192210, "stable"), (10, "motion"), (176300, "motion")]


def test_ohaus_other_units_and_legend():
    c = ohaus.OhausCodec()
    ev = c.feed(b"     0.4500 oz    \r\n       0.85 oz    NET\r\n     -1.20 g  \r\n")
    assert weights(ev) == [(12757, "stable"), (24097, "stable"), (-1200, "stable")]


def test_ohaus_overload_and_es():
    c = ohaus.OhausCodec()
    assert weights(c.feed(ohaus.encode_overload())) == [(0, "overload")]
    c.note_sent("tare")
    assert c.feed(b"ES\r\n") == [CommandReply("tare", False, "scale answered ES (invalid command)", b"ES")]
    assert len(errors(c.feed(b"ES\r\n"))) == 1


def test_ohaus_garbage_counted():
    c = ohaus.OhausCodec()
    ev = c.feed(b"\x00\x01\x02\r\n12 furlongs\r\nabc\r\n")
    assert len(errors(ev)) == 3


def test_ohaus_encoder_roundtrip():
    c = ohaus.OhausCodec()
    assert weights(c.feed(ohaus.encode_weight(3540, stable=False))) == [(3540, "motion")]
    assert ohaus.encode_weight(3540, stable=True) == b"      3.54 g  \r\n"


# --------------------------------------------------------------------------- issue 18: as the vendors document


def test_ad_t_is_the_tola_not_the_troy_ounce():
    # 1.234 tola = 14,393 mg (11.6638038 g each); read as troy ounce it would be 38,382 mg
    assert weights(ad.ADCodec().feed(b"ST,+0001.234   t\r\n")) == [(14393, "stable")]
    with pytest.raises(ValueError):
        to_mg("1", "t")  # outside A&D, a bare "t" is not guessed


def test_ad_below_range_is_not_overload():
    ev = ad.ADCodec().feed(b"OL,-9999999E+19\r\nOL,+9999999E+19\r\n")
    assert weights(ev) == [(0, "underload"), (0, "overload")]


def test_ad_zero_is_done_only_on_the_second_acknowledgement():
    c = ad.ADCodec()
    c.note_sent("zero")
    first = c.feed(b"\x06\r\n")
    assert [(e.command, e.ok, e.final) for e in first] == [("zero", True, False)]
    second = c.feed(b"\x06\r\n")
    assert [(e.command, e.ok, e.final) for e in second] == [("zero", True, True)]
    c.note_sent("zero")
    failed = c.feed(b"\x06\r\nEC,E11\r\n")
    assert [(e.command, e.ok, e.final) for e in failed] == [("zero", True, False), ("zero", False, True)]


def test_ohaus_total_line_is_not_a_weight_on_the_pan():
    c = ohaus.OhausCodec()
    assert c.feed(b"     207.80 g TOTAL\r\n") == []
    assert weights(c.feed(b"     192.21 g\r\n")) == [(192210, "stable")]


def test_nci_documented_frame_and_three_status_bytes():
    c = nci.NCICodec()
    documented = bytes.fromhex("0a2020312e32356c620d0a30300d03")  # 1.25 lb, stable (issue 18, 7821 §6.3)
    assert weights(c.feed(documented)) == [(566990, "stable")]
    ev = c.feed(b"\n  1.25lb\r\n0p4\r\x03")  # byte 2 = 0x70: a third byte follows (6702 p.14); net
    assert weights(ev) == [(566990, "stable")] and ev[0].flags == ("net",)
    assert errors(c.feed(b"\n  1.25lb\r\n0p\r\x03"))  # "byte follows" with no byte after it
    assert nci.encode_weight(566990, unit="lb") == b"\n   1.25lb\r\n00\r\x03"
