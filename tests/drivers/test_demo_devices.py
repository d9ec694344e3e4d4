"""The demo wiring: one of each simulated device, driven by the real actors end to end."""

from __future__ import annotations

import trio

from actors import payment_terminal, printer, scale, scanner
from drivers.sim.demo import run_demo_devices
from hub.domain.devices import (
    Charge,
    PaymentResult,
    PrintJobUpdate,
    PrintReceipt,
    ReceiptDocument,
    ScaleReading,
    Scan,
)


async def test_demo_devices_with_all_actors():
    out_send, out = trio.open_memory_channel(1000)
    async with trio.open_nursery() as nursery:
        devices = await nursery.start(run_demo_devices, "ohaus")
        inboxes = {}
        for name, actor, cfg in [
            ("scale", scale.run, devices.scale_config),
            ("scanner", scanner.run, devices.scanner_config),
            ("printer", printer.run, devices.receipt_printer_config),
            ("terminal", payment_terminal.run, devices.payment_terminal_config),
        ]:
            send, recv = trio.open_memory_channel(10)
            inboxes[name] = send
            await nursery.start(actor, cfg, out_send.send, recv)

        async def wait(predicate):
            with trio.fail_after(5):
                while True:
                    m = await out.receive()
                    if predicate(m):
                        return m

        devices.scale.set_weight(3_540)
        r = await wait(lambda m: isinstance(m, ScaleReading) and m.weight_mg == 3_540 and m.stable)
        assert r.certificate
        await trio.sleep(0.2)  # let the scanner port open
        devices.scanner.scan_now("1A4060300002EE1000012345")
        s = await wait(lambda m: isinstance(m, Scan))
        assert s.kind == "metrc_package" and s.paired_with == "register-1"
        await inboxes["printer"].send(PrintReceipt(job_id="j1", document=ReceiptDocument(open_drawer=True)))
        await wait(lambda m: isinstance(m, PrintJobUpdate) and m.state == "printed")
        assert b"\x1bp\x00\x19\xfa" in devices.receipt_printer.received
        await inboxes["terminal"].send(Charge(reference="s1", amount_cents=100))
        p = await wait(lambda m: isinstance(m, PaymentResult))
        assert p.outcome == "approved"
        nursery.cancel_scope.cancel()
