"""Pay-by-bank through its adapter against the Aeropay-shaped emulator (real HTTP on loopback):
approved, declined, refunded; credentials kept out of logs."""

from __future__ import annotations

import logging

import pytest
import trio

from drivers.paybybank import AeropayProvider, BankUnavailable, bank_uuid
from sandbox.paybybank import PayByBankEmulator


@pytest.fixture
async def bank(nursery: trio.Nursery) -> PayByBankEmulator:
    return await nursery.start(PayByBankEmulator().run)  # type: ignore[no-any-return]


def provider(emu: PayByBankEmulator, secret: str | None = None) -> AeropayProvider:
    return AeropayProvider(
        emu.url,
        merchant_id=emu.merchant_id,
        api_key=emu.api_key,
        api_secret=secret or emu.api_secret,
        timeout_s=5,
    )


async def test_approved_then_refunded(bank: PayByBankEmulator) -> None:
    p = provider(bank)
    with trio.fail_after(10):
        sent = await p.request_payment(4310, "cartA0ff", "+15555550100")
        assert sent.state == "pending"
        assert bank.requests == [(bank_uuid("cartA0ff"), "43.10", "+15555550100")]
        assert (await p.payment("cartA0ff")).state == "pending"  # not approved on the phone yet
        bank.approve()
        done = await p.payment("cartA0ff")
        assert done.state == "approved" and done.amount_cents == 4310 and done.customer_name
        refunded = await p.refund("cartA0ff", 4310)
        assert refunded.state == "cancelled"  # same day: voided, no money moves
        again = await p.refund("cartA0ff", 4310)  # a retried refund is answered, never applied twice
        assert len(bank.reversals) == 1 and again.state == "cancelled"


async def test_declined_on_the_phone(bank: PayByBankEmulator) -> None:
    p = provider(bank)
    bank.auto = "decline"
    with trio.fail_after(10):
        await p.request_payment(2000, "cartB1aa", "+15555550101")
        assert (await p.payment("cartB1aa")).state == "declined"


async def test_partial_refund_and_bad_credentials(
    bank: PayByBankEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    p = provider(bank)
    bank.auto = "approve"
    with trio.fail_after(10):
        await p.request_payment(5000, "cartC2bb", "+15555550102")
        part = await p.refund("cartC2bb", 1500)
        assert part.state == "refunded" and bank.reversals[0][1] == "15.00"
        with pytest.raises(BankUnavailable):
            await provider(bank, secret="wrong-secret").payment("cartC2bb")
    assert bank.api_secret not in caplog.text and "wrong-secret" not in caplog.text
    assert bank.api_secret not in repr(p)


async def test_the_phone_answers_later(bank: PayByBankEmulator) -> None:
    """The phone answers a while after the payment link arrives: polled before then the payment is pending,
    then it turns approved. Robust under load: the phone's delay is far longer than the two loopback round
    trips before the first poll, and the approval is awaited by polling (bounded), not by a fixed sleep."""
    p = provider(bank)
    delay = 1.5
    bank.auto, bank.auto_after_s = "approve", delay
    with trio.fail_after(10):
        t0 = trio.current_time()
        await p.request_payment(1000, "cartD3cc", "+15555550103")
        first = await p.payment("cartD3cc")
        assert first.state == "pending", f"first poll {trio.current_time() - t0:.2f}s after the request"
        while (state := (await p.payment("cartD3cc")).state) == "pending":
            await trio.sleep(0.05)
        assert state == "approved"
        assert trio.current_time() - t0 >= delay  # the phone answered later, not at once
