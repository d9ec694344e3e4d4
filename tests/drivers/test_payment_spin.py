"""Dejavoo SPIn REST: the documented examples decode and encode as documented, and the driver against
the SPIn emulator (real HTTP on loopback) — approve, decline, abort, time out, lost answer, offline, void,
return. Fixtures: tests/drivers/data/spin/ (source in SOURCE.md there)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import msgspec
import pytest
import trio

from drivers.payment import Approved, Cancelled, Declined, Offline
from drivers.spin import (
    AbortRequest,
    SaleRequest,
    SpinTerminal,
    StatusRequest,
    abort_response,
    payment_response,
    terminal_status_response,
)
from sandbox.spin import SpinEmulator

DATA = Path(__file__).parent / "data" / "spin"


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


# --------------------------------------------------------------------------- documented examples


def test_documented_approved_sale_decodes() -> None:
    answer = payment_response.decode(fixture("sale_approved.json"))
    g = answer.general_response
    assert (g.result_code, g.status_code, g.message, g.host_response_code) == ("0", "0000", "Approved", "00")
    assert answer.auth_code == "VTLMC1" and answer.reference_id == "d6c871b6a580"
    assert answer.amounts is not None and answer.amounts.amount == 1 and answer.amounts.total_amount == 1.05
    assert answer.card_data is not None and answer.card_data.last4 == "4111"
    assert answer.voided is False and answer.batch_number == "103"
    term = SpinTerminal("http://unused", tpn="Z11NATASHA98", auth_key="zbhRAW9N6x")
    result = term._outcome("d6c871b6a580", 100, answer)
    assert result == Approved("d6c871b6a580", 100, "VTLMC1", "4111")


def test_documented_duplicate_reference_error_decodes() -> None:
    answer = payment_response.decode(fixture("sale_error_duplicate.json"))
    g = answer.general_response
    assert (g.result_code, g.status_code, g.detailed_message) == ("1", "1011", "Duplicate Reference Id")


def test_documented_abort_and_terminal_status_decode() -> None:
    assert abort_response.decode(fixture("abort_response.json")).general_response.status_code == "0000"
    status = terminal_status_response.decode(fixture("terminal_status_response.json"))
    assert status.terminal_status == "Offline"


def test_our_requests_carry_the_documented_field_names() -> None:
    """Every field we send exists, spelled the same, in the documented request example."""
    sale = json.loads(msgspec.json.encode(SaleRequest(25.0, "Credit", "111", "Z11NATASHA98", "zbhRAW9N6x")))
    documented = json.loads(fixture("sale_request.json"))
    assert set(sale) <= set(documented), set(sale) - set(documented)
    assert sale["Authkey"] == "zbhRAW9N6x" and sale["ReferenceId"] == "111" and sale["Amount"] == 25.0
    void = json.loads(
        msgspec.json.encode(SaleRequest(1.0, "Credit", "d6c871b6a580", "z11invtest69", "JZiRUusizc"))
    )
    assert set(void) - {"InvoiceNumber"} <= set(json.loads(fixture("void_request.json")))
    ret = set(json.loads(msgspec.json.encode(SaleRequest(1.0, "Credit", "3e", "t" * 10, "k" * 10))))
    # the documented Return example stops after IsvId (credentials and timeout are in its parameter table)
    assert ret - {"Tpn", "Authkey", "SPInProxyTimeout"} <= set(json.loads(fixture("return_request.json")))
    status = json.loads(msgspec.json.encode(StatusRequest("Credit", "", "", "")))
    assert set(status) <= set(json.loads(fixture("status_request.json")))
    abort = json.loads(msgspec.json.encode(AbortRequest("", "", "")))
    assert set(abort) <= set(json.loads(fixture("abort_request.json")))
    # and the documented request round-trips through our type (unknown fields ignored, values kept)
    decoded = msgspec.json.decode(fixture("sale_request.json"), type=SaleRequest)
    assert (decoded.amount, decoded.payment_type, decoded.reference_id, decoded.tpn) == (
        25,
        "Credit",
        "111",
        "Z11NATASHA98",
    )


# --------------------------------------------------------------------------- driver vs emulator


@pytest.fixture
async def spin(nursery: trio.Nursery) -> SpinEmulator:
    return await nursery.start(SpinEmulator().run)  # type: ignore[no-any-return]


def terminal(emu: SpinEmulator, **kw: object) -> SpinTerminal:
    return SpinTerminal(emu.url, tpn=emu.tpn, auth_key=emu.auth_key, connect_timeout_s=1, **kw)  # type: ignore[arg-type]


async def test_approve_decline_and_status(spin: SpinEmulator) -> None:
    term = terminal(spin)
    with trio.fail_after(10):
        assert (await term.status()).online
        ok = await term.charge(4310, "R1a1")
        assert (
            isinstance(ok, Approved) and ok.amount_cents == 4310 and ok.auth_code and ok.card_last4 == "0119"
        )
        spin.mode = "decline"
        spin.decline_host_code = "51"
        no = await term.charge(4310, "R1a2")
        assert isinstance(no, Declined) and no.code == "51" and "INSUFF" in no.reason
        assert await term.lookup("R1a1") == ok
        assert await term.lookup("never") is None
    assert spin.sales == [("R1a1", 4310), ("R1a2", 4310)]


async def test_abort_while_waiting(spin: SpinEmulator) -> None:
    term = terminal(spin)
    spin.mode = "wait"
    result: list[object] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as n:

            async def charge() -> None:
                result.append(await term.charge(1000, "W1"))

            n.start_soon(charge)
            while not spin.waiting:
                await trio.sleep(0.01)
            assert await term.cancel("W1")
    assert result == [Cancelled("W1", 1000)] and spin.aborts == ["W1"]


async def test_proxy_timeout_resolved_by_status_one_charge(spin: SpinEmulator) -> None:
    """2007: the proxy stopped waiting although the terminal approved; Status tells, no second Sale."""
    spin.mode = "timeout"
    spin.proxy_timeout_s = 0.3
    term = terminal(spin)
    with trio.fail_after(10):
        result = await term.charge(2500, "T1")
    assert isinstance(result, Approved) and result.amount_cents == 2500
    assert [p for p, _ in spin.requests] == ["/v2/Payment/Sale", "/v2/Payment/Status"]
    assert len(spin.sales) == 1


async def test_lost_answer_resolved_by_status_before_any_resend(spin: SpinEmulator) -> None:
    spin.mode = "lose_answer"
    term = terminal(spin)
    with trio.fail_after(10):
        result = await term.charge(1999, "L1")
    assert isinstance(result, Approved) and result.amount_cents == 1999
    assert [p for p, _ in spin.requests] == ["/v2/Payment/Sale", "/v2/Payment/Status"]
    assert spin.sales == [("L1", 1999)]


async def test_offline_and_unreachable(spin: SpinEmulator) -> None:
    spin.mode = "offline"
    term = terminal(spin)
    with trio.fail_after(10):
        status = await term.status()
        assert not status.online and "not connected" in status.detail
        result = await term.charge(500, "O1")
        assert isinstance(result, Offline) and "2001" in result.detail
        nobody = SpinTerminal("http://127.0.0.1:9", tpn=spin.tpn, auth_key=spin.auth_key, connect_timeout_s=1)
        assert isinstance(await nobody.charge(500, "O2"), Offline)
        assert not (await nobody.status()).online


async def test_void_and_return(spin: SpinEmulator) -> None:
    term = terminal(spin)
    with trio.fail_after(10):
        sale = await term.charge(3000, "V1")
        assert isinstance(sale, Approved)
        assert not await term.void("V1", 2999)  # Void needs the amount of the transaction voided
        assert await term.void("V1", 3000)
        assert spin.batch["V1"].voided
        assert isinstance(await term.lookup("V1"), Cancelled)
        refund = await term.refund(1200, "V1r")
        assert isinstance(refund, Approved) and spin.returns == [("V1r", 1200)]


async def test_credentials_never_logged(spin: SpinEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    spin.mode = "lose_answer"
    term = terminal(spin)
    with trio.fail_after(10):
        await term.charge(100, "K1")
        await term.status()
        wrong = SpinTerminal(spin.url, tpn=spin.tpn, auth_key="WrongKey00", connect_timeout_s=1)
        refused = await wrong.charge(100, "K2")
    assert isinstance(refused, Offline) and "auth key" in refused.detail
    assert spin.auth_key not in caplog.text and "WrongKey00" not in caplog.text
    assert spin.auth_key not in repr(term) and spin.auth_key not in refused.detail


# --------------------------------------------------------------------------- the actor on SPIn


async def test_actor_on_spin_recovers_a_timed_out_sale(spin: SpinEmulator) -> None:
    from actors import payment_terminal as payment_actor
    from hub.domain.devices import Charge, DeviceHealth, PaymentResult, PaymentTerminalConfig, Secret

    spin.mode = "timeout"
    spin.proxy_timeout_s = 0.3
    send, recv = trio.open_memory_channel[object](100)
    inbox_send, inbox = trio.open_memory_channel[object](10)
    cfg = PaymentTerminalConfig(
        device_id="spin-1",
        address=spin.url,
        driver="spin",
        tpn=spin.tpn,
        auth_key=Secret(spin.auth_key),
        connect_timeout_s=1,
        status_interval_s=0.2,
    )
    assert spin.auth_key not in repr(cfg)
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            await n.start(payment_actor.run, cfg, send.send, inbox)
            while not isinstance(m := await recv.receive(), DeviceHealth) or not m.up:
                pass
            await inbox_send.send(Charge(reference="S1", amount_cents=4800))
            while not isinstance(m := await recv.receive(), PaymentResult):
                pass
            assert m.outcome == "approved" and m.amount_cents == 4800
            n.cancel_scope.cancel()
    assert len(spin.sales) == 1


async def test_proxy_timeout_without_a_record_is_not_a_decline(spin: SpinEmulator) -> None:
    """2007 while the customer never presented a card: Status finds nothing; the outcome is reported as a
    timeout (nothing charged), never as a bank decline."""
    from drivers.payment import TimedOut

    spin.mode = "wait"
    spin.proxy_timeout_s = 0.3
    term = terminal(spin)
    with trio.fail_after(10):
        result = await term.charge(700, "N1")
    assert isinstance(result, TimedOut) and "no record" in result.detail
    assert await term.lookup("N1") is None


def test_config_refuses_an_incomplete_spin_terminal_and_the_register_outwaits_it() -> None:
    from hub.config import ConfigError, parse_config
    from hub.domain.devices import PaymentTerminalConfig
    from hub.sale import card
    from hub.sale import protocol as p
    from hub.wiring import Features, tables
    from tests.conftest import TEST_TOML

    handlers, _ = tables(Features.store())

    spin_device = """
[[devices]]
id = "t1"
kind = "payment_terminal"
driver = "spin"
port = "https://spinpos.net"
tpn = "Z11NATASHA98"
auth_key = "{key}"
"""
    assert parse_config(TEST_TOML + spin_device.format(key="zbhRAW9N6x")).devices[0].driver == "spin"
    with pytest.raises(ConfigError, match="auth_key"):
        parse_config(TEST_TOML + spin_device.format(key="short"))
    with pytest.raises(ConfigError, match="charge_timeout_seconds"):
        parse_config(TEST_TOML + spin_device.format(key="zbhRAW9N6x") + "charge_timeout_seconds = 900\n")
    # issue 11: the register waits longer than the slowest terminal allowed, abort and Status included.
    # SPIn's real worst case (drivers/spin.py): the Sale's HTTP wait (proxy timeout + 15 s), the driver's
    # Status (≤ 30 s + 3 s connect), the actor's Abort (≤ 30 s) and Status (≤ 30 s); or a partial
    # approval's Void (≤ 60 s) and its Status check. The old "charge timeout + 75 s" fell short of it.
    slowest_spin = PaymentTerminalConfig(device_id="t", address="x", charge_timeout_s=200, driver="spin")
    spin_bound = 3 + 200 + 15 + max((3 + 30) + 30 + 30, (3 + 60) + (3 + 30))
    assert slowest_spin.wait_s > spin_bound > 200 + 75
    slowest_generic = PaymentTerminalConfig(device_id="t", address="h:1", charge_timeout_s=200)
    assert slowest_generic.wait_s > 3 + 200 + 30 + 30
    assert handlers[p.Pay].timeout_s == card.PAY_WAIT_S > max(slowest_spin.wait_s, slowest_generic.wait_s)


async def test_terminal_progress_and_status_lookup_are_reported(spin: SpinEmulator) -> None:
    """With IsReadyForIS the terminal's intermediate status reaches the register while it waits; a lost
    answer shows as "recovering" before the Status lookup."""
    spin.mode = "wait"
    spin.proxy_timeout_s = 1.2
    term = terminal(spin)
    term.progress_interval_s = 0.1
    seen: list[tuple[str, str]] = []

    async def on_progress(state: str, text: str) -> None:
        seen.append((state, text))

    term.on_progress = on_progress
    with trio.fail_after(10):
        await term.charge(900, "P1")
    assert ("waiting", "Terminal: Insert, tap or swipe card") in seen
    assert seen[-1][0] == "recovering"
    sale = next(b for p, b in spin.requests if p == "/v2/Payment/Sale")
    assert sale["IsReadyForIS"] is True


# --------------------------------------------------------------------------- never a false decline


@pytest.mark.parametrize("code", ["2007", "2008"])
async def test_status_answering_busy_or_timed_out_is_not_a_decline(spin: SpinEmulator, code: str) -> None:
    """The answer to a Sale is lost and Status answers 2007 (timed out) or 2008 (terminal in use): the
    outcome is unknown (TimedOut, so the actor aborts and asks again), never Declined — the terminal did
    approve it."""
    from drivers.payment import TimedOut

    spin.mode = "lose_answer"
    spin.status_code = code
    term = terminal(spin)
    with trio.fail_after(10):
        result = await term.charge(1234, f"B{code}")
        assert isinstance(result, TimedOut), result
        assert isinstance(await term.lookup(f"B{code}"), TimedOut)
        spin.status_code = None  # the terminal answers again: the approval is found
        assert isinstance(await term.lookup(f"B{code}"), Approved)
    assert spin.batch[f"B{code}"].state == "approved" and len(spin.sales) == 1


def test_only_documented_decline_codes_mean_declined() -> None:
    """1015 (declined by the host) is a decline; a missing GeneralResponse, an empty or unknown status code,
    2007 and 2008 mean the outcome is unknown."""
    from drivers.payment import TimedOut

    term = SpinTerminal("http://unused", tpn="Z11NATASHA98", auth_key="zbhRAW9N6x")
    declined = payment_response.decode(
        b'{"GeneralResponse": {"ResultCode": "1", "StatusCode": "1015", "HostResponseCode": "51",'
        b' "HostResponseMessage": "INSUFF FUNDS"}}'
    )
    assert term._outcome("r", 100, declined) == Declined("r", 100, "INSUFF FUNDS", "51")
    unknown = [
        b"{}",
        b'{"GeneralResponse": {"ResultCode": "2", "StatusCode": ""}}',
        b'{"GeneralResponse": {"ResultCode": "2", "StatusCode": "2007", "Message": "The operation has timed out"}}',
        b'{"GeneralResponse": {"ResultCode": "2", "StatusCode": "2008", "Message": "Terminal in use"}}',
        b'{"GeneralResponse": {"ResultCode": "1", "StatusCode": "1999"}}',
        b'{"GeneralResponse": {"ResultCode": "0", "StatusCode": ""}}',
    ]
    for raw in unknown:
        assert isinstance(term._outcome("r", 100, payment_response.decode(raw)), TimedOut), raw


async def test_partial_approval_whose_void_fails_is_not_a_decline(spin: SpinEmulator) -> None:
    """0001 Partial Approval and the Void is not confirmed (the terminal dropped off): the money may be
    taken, so the result is Unresolved with the partial amount, never Declined "…; voided"."""
    from drivers.payment import Unresolved

    spin.partial_cents = 2000
    spin.void_mode = "refuse"
    term = terminal(spin)
    with trio.fail_after(10):
        result = await term.charge(5000, "PA1")
    assert isinstance(result, Unresolved) and result.amount_cents == 2000, result
    assert spin.voids == [("PA1", 2000)] and not spin.batch["PA1"].voided
    spin.void_mode = "ok"
    with trio.fail_after(10):
        assert await term.charge(5000, "PA2") == Declined(
            "PA2", 5000, "only part of the amount was approved; voided", "0001"
        )
    assert spin.batch["PA2"].voided


async def test_void_is_idempotent_and_rechecked(spin: SpinEmulator) -> None:
    """A second void of a voided transaction is refused by the terminal; the driver re-checks with Status
    and reports it voided. A void whose answer is lost is re-checked the same way."""
    term = terminal(spin)
    with trio.fail_after(10):
        assert isinstance(await term.charge(800, "V1"), Approved)
        assert await term.void("V1", 800)
        assert await term.void("V1", 800)  # refused as already voided; Status says Voided
        assert isinstance(await term.charge(800, "V2"), Approved)
        spin.void_mode = "lose"
        assert not await term.void("V2", 800)  # lost and not voided: Status says approved
