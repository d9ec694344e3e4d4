"""Scanner: classification of each symbology, framing, and a licence read whole over a real pty."""

from __future__ import annotations

import pytest
import trio

from actors import scanner as scanner_actor
from drivers.scanner import ScanFramer
from drivers.sim.scanner import ScannerSimulator
from hub.domain.devices import DeviceHealth, Scan, ScannerConfig
from hub.domain.scan_classify import aamva_declared_length, classify, gs1_check_digit

METRC_TAG = "1A4060300002EE1000012345"
BIOTRACK = "6647128800132498"
UPC_A = "036000291452"
EAN_13 = "4006381333931"
EAN_8 = "96385074"
RETAIL_ID = "https://1a4.com/q83vASNFZwAAAQkQCA"


def aamva_payload(*, jurisdiction_version: str = "01", fix_lengths: bool = True) -> str:
    """A v10 Virginia-style payload (benhovinga example shape) with correct subfile offsets."""
    dl = (
        "DLDAQT64235789\nDCSSAMPLE\nDDEN\nDACMICHAEL\nDDFN\nDADJOHN\nDDGN\nDCUJR\nDCAD\nDCBK\nDCDPH\n"
        "DBD06062019\nDBB06061986\nDBA12102024\nDBC1\nDAU068 in\nDAYBRO\nDAG2300 WEST BROAD STREET\n"
        "DAIRICHMOND\nDAJVA\nDAK232690000  \nDCF2424244747474786102204\nDCGUSA\nDCK123456789\nDDAF\n"
        "DDB06062018\nDDC06062020\nDDD1\r"
    )
    zv = "ZVZVA01\r"
    head_len = 21 + 10 * 2
    # Real cards often declare lengths that do not add up; the framer must still read them whole.
    skew = 0 if fix_lengths else 7
    header = (
        f"@\n\x1e\rANSI 636000{'10'}{jurisdiction_version}02"
        f"DL{head_len:04d}{len(dl) + skew:04d}ZV{head_len + len(dl) + skew:04d}{len(zv):04d}"
    )
    assert len(header) == head_len
    return header + dl + zv


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("data", "kind", "symbology"),
    [
        (METRC_TAG, "metrc_package", "code128"),
        (BIOTRACK, "biotrack_barcode", "code128"),
        (UPC_A, "upc_a", "upc_a"),
        (EAN_13, "ean_13", "ean_13"),
        (EAN_8, "ean_8", "ean_8"),
        (RETAIL_ID, "metrc_retail_id", "qr"),
    ],
)
def test_each_symbology_classified(data, kind, symbology):
    c = classify(data)
    assert (c.kind, c.symbology, c.valid) == (kind, symbology, True)
    assert c.data == data


def test_retail_id_short_code_extracted():
    assert classify(RETAIL_ID).retail_id_code == "q83vASNFZwAAAQkQCA"
    assert classify("https://example.com/q83vASNFZwAAAQkQCA").kind == "unknown"


def test_aamva_classified_whole_with_control_characters():
    payload = aamva_payload()
    c = classify(payload)
    assert c.kind == "aamva" and c.symbology == "pdf417" and c.valid
    assert c.data == payload  # not stripped, LF/RS/CR kept
    assert "\x1e" in c.data and c.data.endswith("\r")


def test_gs1_check_digit():
    assert gs1_check_digit(UPC_A[:-1]) == 2
    assert gs1_check_digit(EAN_13[:-1]) == 1
    assert gs1_check_digit(EAN_8[:-1]) == 4


@pytest.mark.parametrize(("good", "name"), [(UPC_A, "UPC-A"), (EAN_13, "EAN-13"), (EAN_8, "EAN-8")])
def test_bad_check_digit_refused_with_reason(good, name):
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    c = classify(bad)
    assert not c.valid
    assert name in c.reason and f"should be {good[-1]}" in c.reason


def test_short_metrc_tag_refused_and_lowercase_tag_normalised():
    c = classify(METRC_TAG[:-1])
    assert c.kind == "metrc_package" and not c.valid and "24 characters" in c.reason
    assert classify(METRC_TAG.lower()).data == METRC_TAG


def test_wedge_mangled_licence_recognised_but_refused():
    mangled = aamva_payload().replace("\n", "").replace("\x1e", "").replace("\r", "")
    c = classify(mangled)
    assert c.kind == "aamva" and not c.valid and "wedge" in c.reason


def test_wedge_suffix_and_unknown():
    assert classify(UPC_A + "\r\n").data == UPC_A
    assert classify("hello").kind == "unknown"
    assert classify("").kind == "unknown"


def test_aamva_declared_length():
    payload = aamva_payload()
    assert aamva_declared_length(payload) == len(payload)
    assert aamva_declared_length(payload[:30]) is None


# --------------------------------------------------------------------------- framing


def test_framer_splits_symbols_at_suffix():
    f = ScanFramer(b"\r\n")
    assert f.feed(f"{UPC_A}\r\n{METRC_TAG}\r".encode()) == [UPC_A.encode()]
    assert f.feed(b"\n") == [METRC_TAG.encode()]


def test_framer_reads_aamva_by_declared_length_despite_cr_suffix():
    payload = aamva_payload().encode()
    f = ScanFramer(b"\r")
    frames = []
    for i in range(0, len(payload), 7):
        frames += f.feed(payload[i : i + 7])
    frames += f.feed(b"\r" + UPC_A.encode() + b"\r")
    assert frames == [payload, UPC_A.encode()]


def test_framer_wrong_declared_lengths_fall_back_to_idle_gap():
    payload = aamva_payload(fix_lengths=False).encode()
    f = ScanFramer(b"\r")
    assert f.feed(payload + b"\r") == []
    assert f.flush() == [payload]


def test_framer_without_suffix_uses_gap_and_prefix_is_removed():
    f = ScanFramer(b"", b"\x02")
    assert f.feed(b"\x02" + METRC_TAG.encode()) == []
    assert f.flush() == [METRC_TAG.encode()]


# --------------------------------------------------------------------------- over a real pty


async def start(nursery: trio.Nursery, suffix: str = "\r", gap_s: float = 0.1):
    """A simulated scanner on a pty and the actor reading it. The simulator runs in this process: when
    the machine stalls the process, the line looks quiet to the actor for as long, so a test whose
    symbol must not be cut by the idle gap gives ``gap_s`` room beyond any stall."""
    sim = ScannerSimulator(suffix=suffix.encode())
    await nursery.start(sim.run)
    out_send, out = trio.open_memory_channel(100)
    _inbox_send, inbox = trio.open_memory_channel(1)
    cfg = ScannerConfig(
        device_id="scan-1", port=sim.path, suffix=suffix, frame_gap_s=gap_s, paired_with="reg-1"
    )
    await nursery.start(scanner_actor.run, cfg, out_send.send, inbox)
    await wait_health(out, up=True)  # the port is open: what the scanner sends now is read
    return sim, out, _inbox_send


async def wait_health(out, *, up: bool) -> DeviceHealth:
    with trio.fail_after(5):
        while True:
            m = await out.receive()
            if isinstance(m, DeviceHealth) and m.up == up:
                return m


async def next_scan(out) -> Scan:
    with trio.fail_after(5):
        while True:
            m = await out.receive()
            if isinstance(m, Scan):
                return m


async def test_aamva_payload_read_whole_over_pty():
    async with trio.open_nursery() as nursery:
        # an idle gap far beyond next_scan's bound: the licence must end where its header says it does
        sim, out, _keep = await start(nursery, "\r", gap_s=60.0)
        payload = aamva_payload()
        await sim.scan(payload, chunk=16, delay_s=0.003)
        scan = await next_scan(out)
        assert scan.data == payload
        assert scan.kind == "aamva" and scan.valid
        assert scan.data == payload
        assert scan.paired_with == "reg-1"
        # and the next product scan is its own frame
        sim.scan_now(METRC_TAG)
        scan = await next_scan(out)
        assert (scan.kind, scan.data) == ("metrc_package", METRC_TAG)
        nursery.cancel_scope.cancel()


async def test_aamva_with_wrong_lengths_read_whole_over_pty():
    async with trio.open_nursery() as nursery:
        # the idle gap ends this one: long enough that a stalled test process is not a quiet line
        sim, out, _keep = await start(nursery, "\r\n", gap_s=1.0)
        payload = aamva_payload(fix_lengths=False)
        await sim.scan(payload, chunk=32, delay_s=0.002)
        scan = await next_scan(out)
        assert scan.data == payload and scan.kind == "aamva"
        nursery.cancel_scope.cancel()


async def test_each_symbology_over_pty_and_bad_upc_refused():
    async with trio.open_nursery() as nursery:
        sim, out, _keep = await start(nursery, "\r")
        sim.scan_now(UPC_A[:-1] + "3")
        scan = await next_scan(out)
        assert scan.kind == "upc_a" and not scan.valid and "check digit" in scan.reason
        for data, kind in [
            (BIOTRACK, "biotrack_barcode"),
            (EAN_13, "ean_13"),
            (RETAIL_ID, "metrc_retail_id"),
        ]:
            sim.scan_now(data)
            scan = await next_scan(out)
            assert (scan.kind, scan.data, scan.valid) == (kind, data, True)
        nursery.cancel_scope.cancel()


async def test_scanner_unplug_and_replug():
    async with trio.open_nursery() as nursery:
        sim, out, _keep = await start(nursery, "\r")
        sim.unplug()
        down = await wait_health(out, up=False)
        assert down.errors == 1
        sim.replug()
        up = await wait_health(out, up=True)
        assert up.reconnects == 1
        sim.scan_now(METRC_TAG)
        assert (await next_scan(out)).data == METRC_TAG
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- issue 18: as the vendors document


@pytest.mark.parametrize(
    ("printed", "upc_a"),
    [
        # real UPC-E product codes (issue 18); the expansions follow GS1's zero-suppression rules
        ("04963406", "049000006346"),
        ("01234531", "012300000451"),
        ("01264904", "012000006494"),
        ("04965802", "049000006582"),
    ],
)
def test_upc_e_checked_and_looked_up_by_its_upc_a(printed, upc_a):
    c = classify(printed)
    assert (c.kind, c.valid, c.data, c.printed) == ("upc_e", True, upc_a, printed)
    assert gs1_check_digit(upc_a[:-1]) == int(upc_a[-1])


def test_upc_e_misread_refused_with_the_right_check_digit():
    c = classify("04963407")
    assert c.kind == "upc_e" and not c.valid and "should be 6" in c.reason


def test_retail_id_decodes_offline_to_its_package_label():
    # Metrc Retail ID SDK README: HTTPS://1A4.COM/5LN8CBN1UB33DON9CHKX -> batch 1a4060300020081000006609
    c = classify("HTTPS://1A4.COM/5LN8CBN1UB33DON9CHKX")
    assert c.kind == "metrc_retail_id" and c.valid
    assert c.package_label == "1A4060300020081000006609"


def test_framer_keeps_a_licence_whole_with_a_space_before_the_at_sign():
    payload = aamva_payload().encode()
    framer = ScanFramer(b"\r")
    frames = framer.feed(b" " + payload + b"\r" + METRC_TAG.encode() + b"\r")
    assert frames == [payload, METRC_TAG.encode()]
