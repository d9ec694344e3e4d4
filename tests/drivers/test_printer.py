"""Printers: ESC/POS receipt bytes with the drawer kick, ZPL labels, and a spooler that holds jobs while
the printer is down — over real loopback TCP and a real pty."""

from __future__ import annotations

import pytest
import trio

from actors import printer as printer_actor
from drivers import escpos, zpl
from drivers.printer_transport import parse_tcp_address, read_status
from drivers.sim.printer import PrinterSimulator
from drivers.sim.pty_device import PtyDevice
from hub.domain.devices import (
    DeviceHealth,
    OpenDrawer,
    PackageLabel,
    PrinterConfig,
    PrintJobUpdate,
    PrintLabel,
    PrintReceipt,
    ReceiptDocument,
    ReceiptLine,
    ReceiptTotal,
)

KICK = b"\x1bp\x00\x19\xfa"  # ESC p 0 25 250


def cash_receipt(*, open_drawer: bool = True) -> ReceiptDocument:
    return ReceiptDocument(
        header_lines=["Green Leaf Dispensary", "12 Main St, Denver CO", "Lic. 402R-00123"],
        items=[
            ReceiptLine(
                description="Blue Dream 3.5 g",
                amount_cents=3500,
                quantity="1 x",
                detail="1A4060300002EE1000012345",
            ),
            ReceiptLine(description="Café Gummies™ 100 mg", amount_cents=2200, quantity="2 x"),
        ],
        totals=[
            ReceiptTotal(label="Subtotal", amount_cents=5700),
            ReceiptTotal(label="Tax 15%", amount_cents=855),
            ReceiptTotal(label="Total", amount_cents=6555, emphasis=True),
            ReceiptTotal(label="Cash", amount_cents=7000),
            ReceiptTotal(label="Change", amount_cents=445),
        ],
        footer_lines=["Thank you!"],
        barcode="R-000123",
        open_drawer=open_drawer,
    )


# --------------------------------------------------------------------------- ESC/POS bytes


def test_cash_receipt_contains_drawer_kick_and_cut():
    data = escpos.render_receipt(cash_receipt())
    assert data.startswith(b"\x1b@")  # ESC @ init
    assert KICK in data
    assert data.index(KICK) < data.rindex(escpos.CUT)  # kick, then cut
    assert b"Blue Dream 3.5 g" in data and b"$65.55" in data and b"$4.45" in data
    assert b"1A4060300002EE1000012345" in data
    assert b"\x1dk" in data and b"R-000123" in data  # GS k: Code 128 receipt number


def test_card_receipt_does_not_kick_drawer():
    assert KICK not in escpos.render_receipt(cash_receipt(open_drawer=False))


def test_money_format():
    assert escpos.money(123456) == "$1,234.56"
    assert escpos.money(-500) == "-$5.00"
    assert escpos.money(5) == "$0.05"


def test_paper_status_parse():
    assert escpos.parse_paper_status(0x12) == escpos.PaperStatus(False, False, 0x12)
    assert escpos.parse_paper_status(0x1E).near_end
    out = escpos.parse_paper_status(0x72)
    assert out.paper_out and not out.near_end  # python-escpos RT_MASK_NOPAPER = 114
    assert escpos.paper_status_byte(paper_out=True) == 0x72
    assert escpos.parse_paper_status(0xFF) is None  # not a status byte
    assert escpos.parse_paper_status(0x00) is None
    for paper_out in (False, True):
        b = escpos.paper_status_byte(paper_out=paper_out)
        assert escpos.parse_paper_status(b).paper_out is paper_out


# --------------------------------------------------------------------------- ZPL


def test_exit_label_zpl():
    label = PackageLabel(
        tag="1A4060300002EE1000012345",
        product="Blue Dream ^XZ~JR",
        weight_mg=3_500,
        thc_percent_x100=2345,
        thc_mg=812,
    )
    data = zpl.render_label(label).decode()
    assert data.startswith("^XA") and data.rstrip().endswith("^XZ")
    assert "^BCN,70,Y,N,N^FH_^FD1A4060300002EE1000012345^FS" in data
    assert "Net wt 3.50 g" in data and "THC 23.45%" in data and "THC 812 mg" in data
    # a product name cannot end the label early or inject a command
    assert "Blue Dream _5EXZ_7EJR" in data
    assert data.count("^XZ") == 1


def test_zpl_host_status_parse():
    assert zpl.parse_host_status(zpl.host_status_answer()) == zpl.ZplStatus(False, False, False, False)
    assert zpl.parse_host_status(zpl.host_status_answer(paper_out=True)).paper_out
    assert zpl.parse_host_status(zpl.host_status_answer()[:20]) is None


def test_tcp_address_forms():
    assert parse_tcp_address("tcp://10.0.0.7:9100") == ("10.0.0.7", 9100)
    assert parse_tcp_address("printer.local") == ("printer.local", 9100)
    assert parse_tcp_address("10.0.0.7:9101") == ("10.0.0.7", 9101)
    assert parse_tcp_address("/dev/ttyUSB1") is None
    assert parse_tcp_address("socket://10.0.0.7:4001") is None


# --------------------------------------------------------------------------- actor over TCP


class Out:
    def __init__(self) -> None:
        self.send, self.recv = trio.open_memory_channel(1000)

    async def publish(self, m) -> None:
        await self.send.send(m)

    async def wait(self, predicate, seconds: float = 5):
        with trio.fail_after(seconds):
            while True:
                m = await self.recv.receive()
                if predicate(m):
                    return m


def job(state: str, job_id: str):
    return lambda m: isinstance(m, PrintJobUpdate) and m.job_id == job_id and m.state == state


async def start_printer(nursery, sim_address: str, **kw):
    out = Out()
    inbox_send, inbox = trio.open_memory_channel(10)
    cfg = PrinterConfig(
        device_id="rcpt-1", address=sim_address, status_timeout_s=0.5, connect_timeout_s=0.5, **kw
    )
    await nursery.start(printer_actor.run, cfg, out.publish, inbox)
    return out, inbox_send


async def test_cash_sale_receipt_prints_with_drawer_kick():
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(PrinterSimulator().run)
        out, inbox = await start_printer(nursery, sim.address)
        await inbox.send(PrintReceipt(job_id="sale-1", document=cash_receipt()))
        await out.wait(job("printed", "sale-1"))
        assert KICK in sim.received
        assert bytes(sim.received) == escpos.render_receipt(cash_receipt())  # status requests stripped
        nursery.cancel_scope.cancel()


async def test_printer_down_queues_without_blocking_then_prints_when_back():
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(PrinterSimulator().run)
        out, inbox = await start_printer(nursery, sim.address)
        await out.wait(lambda m: isinstance(m, DeviceHealth) and m.up)
        sim.go_offline()
        with trio.fail_after(1):  # the sale is not held up by the dead printer
            await inbox.send(PrintReceipt(job_id="sale-2", document=cash_receipt()))
            queued = await out.wait(job("queued", "sale-2"), 1)
        assert queued.queued_jobs == 1
        down = await out.wait(lambda m: isinstance(m, DeviceHealth) and not m.up)
        assert down.queued_jobs >= 1
        await inbox.send(PrintReceipt(job_id="sale-3", document=cash_receipt(open_drawer=False)))
        await out.wait(job("queued", "sale-3"))
        await trio.sleep(0.3)
        assert KICK not in sim.received
        sim.come_online()
        await out.wait(job("printed", "sale-2"))
        await out.wait(job("printed", "sale-3"))
        # in order, each whole
        assert bytes(sim.received) == escpos.render_receipt(cash_receipt()) + escpos.render_receipt(
            cash_receipt(open_drawer=False)
        )
        health = await out.wait(lambda m: isinstance(m, DeviceHealth) and m.up)
        assert health.queued_jobs == 0
        nursery.cancel_scope.cancel()


async def test_paper_out_holds_job_until_paper_is_back():
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(PrinterSimulator().run)
        sim.paper_out = True
        out, inbox = await start_printer(nursery, sim.address)
        down = await out.wait(lambda m: isinstance(m, DeviceHealth) and not m.up and m.detail == "paper out")
        assert down.kind == "printer" and down.paper_out
        await inbox.send(OpenDrawer(job_id="no-sale-1"))
        await out.wait(job("queued", "no-sale-1"))
        await trio.sleep(0.3)
        assert sim.received == b""
        sim.paper_out = False
        await out.wait(job("printed", "no-sale-1"))
        assert bytes(sim.received) == KICK
        nursery.cancel_scope.cancel()


async def test_paper_out_is_its_own_signal_and_an_unreachable_printer_is_not_out_of_paper():
    """DeviceHealth.paper_out feeds storehub_printer_paper_out (PrinterPaperOut): set while the printer
    answers "paper end", cleared when paper is back, and not claimed for a printer that does not answer."""
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(PrinterSimulator().run)
        out, inbox = await start_printer(nursery, sim.address)
        up = await out.wait(lambda m: isinstance(m, DeviceHealth) and m.up)
        assert not up.paper_out
        sim.paper_out = True
        await inbox.send(OpenDrawer(job_id="kick-1"))  # a job makes the spooler ask at once (idle: every 5 s)
        await out.wait(lambda m: isinstance(m, DeviceHealth) and m.paper_out and not m.up)
        sim.paper_out = False
        back = await out.wait(lambda m: isinstance(m, DeviceHealth) and m.up)
        assert not back.paper_out
        await out.wait(job("printed", "kick-1"))
        sim.paper_out = True
        await inbox.send(OpenDrawer(job_id="kick-2"))
        await out.wait(lambda m: isinstance(m, DeviceHealth) and m.paper_out)
        sim.go_offline()
        gone = await out.wait(lambda m: isinstance(m, DeviceHealth) and m.detail != "paper out")
        assert not gone.up and not gone.paper_out, gone
        nursery.cancel_scope.cancel()


async def test_label_printer_zpl_over_tcp():
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(PrinterSimulator().run)
        out, inbox = await start_printer(nursery, sim.address, language="zpl")
        label = PackageLabel(tag="1A4060300002EE1000012345", product="Blue Dream", weight_mg=3_500)
        await inbox.send(PrintLabel(job_id="lbl-1", label=label))
        await out.wait(job("printed", "lbl-1"))
        assert bytes(sim.received) == zpl.render_label(label)
        # a receipt sent to a label printer is refused, not garbled onto a label
        await inbox.send(PrintReceipt(job_id="oops", document=cash_receipt()))
        failed = await out.wait(job("failed", "oops"))
        assert "zpl" in failed.detail
        nursery.cancel_scope.cancel()


async def test_serial_receipt_printer_over_pty():
    async with trio.open_nursery() as nursery:
        device = await nursery.start(PtyDevice("receipt-serial").run)
        out, inbox = await start_printer(nursery, device.path, status_check=False)
        await inbox.send(PrintReceipt(job_id="s-1", document=cash_receipt()))
        await out.wait(job("printed", "s-1"))
        expected = escpos.render_receipt(cash_receipt())
        with trio.fail_after(5):
            while len(device.received) < len(expected):
                await trio.sleep(0.01)
        assert bytes(device.received) == expected
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- Zebra, as its guide documents


@pytest.mark.parametrize(
    ("condition", "detail"),
    [("paper_out", "media out"), ("ribbon_out", "ribbon out"), ("head_open", "head open")],
)
async def test_zebra_silent_to_host_status_is_reported_as_its_condition_not_as_a_dead_link(condition, detail):
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(PrinterSimulator().run)
        setattr(sim, condition, True)
        out, inbox = await start_printer(nursery, sim.address, language="zpl")
        down = await out.wait(lambda m: isinstance(m, DeviceHealth) and not m.up and m.detail != "starting")
        assert down.detail == detail
        assert down.paper_out is (condition == "paper_out")  # ~HQES "media out" is the paper signal
        label = PackageLabel(tag="1A4060300002EE1000012345", product="Blue Dream", weight_mg=3_500)
        await inbox.send(PrintLabel(job_id="held", label=label))
        await out.wait(job("queued", "held"))
        await trio.sleep(0.5)
        assert sim.received == b""  # held, not printed into a printer that cannot print
        assert sim.connections == 1  # not taken for a dead link: no reconnect
        setattr(sim, condition, False)
        await out.wait(job("printed", "held"))
        assert bytes(sim.received) == zpl.render_label(label)
        nursery.cancel_scope.cancel()


class _SilentLink:
    """A connected printer that answers nothing (neither ~HS nor ~HQES)."""

    def __init__(self) -> None:
        self.sent = b""

    async def send_all(self, data: bytes) -> None:
        self.sent += data

    async def receive_some(self, max_bytes: int = 4096) -> bytes:
        await trio.sleep_forever()
        raise AssertionError

    async def aclose(self) -> None:
        pass


async def test_zebra_silent_to_both_queries_says_what_zebra_documents():

    link = _SilentLink()
    status = await read_status(link, "zpl", timeout_s=0.05)
    assert not status.ready
    assert "media" in status.detail and "head open" in status.detail
    assert link.sent == b"~HS~HQES"
