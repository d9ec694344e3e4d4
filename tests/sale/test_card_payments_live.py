"""Card and bank payments through the register, over the live protocol, against the SPIn emulator
(sandbox/spin.py, real HTTP) and the pay-by-bank emulator (sandbox/paybybank.py): approve, decline then
approve on retry, abort while waiting, a lost answer resolved by Status (one charge), a proxy timeout with
the outcome recovered, terminal offline → cash only, void and return; a charge whose sale fails to commit
(storage error, cancellation) is voided; cashless ATM rounding with change from the drawer and a Z report
that ties out; pay by bank approved, declined and refunded. Never orphaned: a partial approval whose void
fails, an approval after the hub stopped waiting, a sale not saved whose void is not confirmed, a void whose
commit fails after the card was voided."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import lmdb
import msgspec
import pytest
import trio

from hub.app import Hub
from hub.audit import AuditEntry, iter_entries
from hub.client import ClientError, HubClient, connect
from hub.config import DeviceSection, PayByBankSection, StoreConfig
from hub.devices import TerminalHandle
from hub.domain.catalog import Package
from hub.domain.demo_catalogue import DemoStore
from hub.domain.drawer import DrawerSession
from hub.domain.receipt import SaleRecord, render_receipt_html
from hub.sale import inventory, reversals
from hub.store.env import decode
from hub.store.keys import text, u64
from hub.store.layout import OPEN_DRAWERS, VOID_INTENTS
from hub.wiring import Features, SaleOptions
from sandbox.paybybank import PayByBankEmulator
from sandbox.spin import SpinEmulator
from tests.conftest import DEMO_PAIRING, PINS, ws_url

FLOAT = {"B20": 10, "B5": 10, "C25": 40}  # $260.00
NO_TAX = {"name": "untaxed test store", "prices_include_tax": False, "rules": []}
APPROVAL = {"manager": "maria", "pin": PINS["maria"], "reason": "customer changed mind"}


class Rig(msgspec.Struct, kw_only=True):
    hub: Any
    spin: Any
    bank: Any


@pytest.fixture
async def rig(hub_factory: Callable[..., Any], config: StoreConfig, nursery: trio.Nursery) -> Rig:

    spin = await nursery.start(SpinEmulator().run)
    bank = await nursery.start(PayByBankEmulator().run)
    config.server.demo = True
    config.devices.append(
        DeviceSection(
            id="spin-1",
            kind="payment_terminal",
            port=spin.url,
            driver="spin",
            tpn=spin.tpn,
            auth_key=spin.auth_key,
            charge_timeout_seconds=30,
            cashless_atm_increment_cents=500,
            cashless_atm_fee_cents=300,
        )
    )
    config.registers[0].payment_terminal = "spin-1"
    config.pay_by_bank = PayByBankSection(
        provider="aeropay",
        base_url=bank.url,
        merchant_id=bank.merchant_id,
        api_key=bank.api_key,
        api_secret=bank.api_secret,
        approve_timeout_seconds=10,
        poll_seconds=0.05,
    )

    features = Features(sale=SaleOptions(demo=True, taxes=NO_TAX), backoffice=True, devices=True)
    hub = await hub_factory(config, features=features)
    return Rig(hub=hub, spin=spin, bank=bank)


def demo(hub: Hub) -> DemoStore:
    return hub.services.demo.store  # type: ignore[no-any-return]


def unit_package(hub: Hub, product_id: str = "FLW-001") -> Package:
    return next(
        p
        for p in inventory.packages_of(hub.store, product_id)
        if p.status == "active" and p.quantity > 3 and p.lab_testing == "passed"
    )


async def price(hub: Hub, product_id: str, cents: int) -> None:
    """Set a product's shelf price (the ATM test needs a $43.10 sale)."""
    product = inventory.product(hub.store, product_id)
    assert product is not None
    new = msgspec.structs.replace(product, price_cents=cents)
    await hub.writer.write(lambda txn: inventory.put_product(txn, hub.store, new), label="test-price")
    hub.services.sale.index.upsert(new)


async def ready(c: HubClient, hub: Hub) -> None:
    await c.pair(DEMO_PAIRING["R1"])
    await c.login("maria", PINS["maria"])
    await c.request("open_drawer", counted=FLOAT, witness="tom", witness_pin=PINS["tom"])
    await c.wait_snapshot(lambda s: s["terminal"]["up"], timeout=15)


async def cart_of_one(c: HubClient, hub: Hub, product_id: str = "FLW-001") -> int:
    await c.request("scan", data=demo(hub).customer("adult").id_scan)
    await c.request("add_package", tag=unit_package(hub, product_id).tag)
    snap = await c.wait_snapshot(lambda s: s["cart"] and s["cart"]["lines"])
    return int(snap["state"]["cart"]["total_cents"])


def sale_record(hub: Hub, number: int) -> SaleRecord:
    rec = hub.store.get("sales", u64(number), SaleRecord)
    assert rec is not None
    return rec


# --------------------------------------------------------------------------- cards


async def test_decline_then_approve_on_retry_same_cart(rig: Rig) -> None:
    hub, spin = rig.hub, rig.spin
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            spin.mode, spin.decline_host_code = "decline", "51"
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            assert e.value.code == "card_declined"
            assert "not enough money" in e.value.message and "INSUFF" not in e.value.message
            snap = await c.wait_snapshot(lambda s: s["payment"] and s["payment"]["state"] == "declined")
            payment = snap["state"]["payment"]
            assert payment["amount_cents"] == total and payment["tender"] == "debit"
            assert "another card" in payment["message"]
            spin.mode = "approve"
            paid = await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            snap = await c.wait_snapshot(lambda s: s["last_receipt"] is not None)
            assert snap["state"]["payment"] is None  # the sale is done; the receipt shows
    refs = [r for r, _ in spin.sales]
    assert len(refs) == 2 and refs[0] != refs[1]  # a new attempt, not the stored decline replayed
    [tender] = sale_record(hub, paid["receipt_number"]).receipt.tenders
    assert tender.reference == refs[1] and tender.card_last4 == "0119" and tender.auth_code.startswith("VTL")


async def test_abort_while_waiting_for_the_card(rig: Rig) -> None:
    hub, spin = rig.hub, rig.spin
    spin.mode = "wait"
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            errors: list[ClientError] = []

            async def pay() -> None:
                try:
                    await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}], timeout=60)
                except ClientError as exc:
                    errors.append(exc)

            async with trio.open_nursery() as n:
                n.start_soon(pay)
                snap = await c.wait_snapshot(lambda s: s["payment"] and s["payment"]["state"] == "waiting")
                assert snap["state"]["payment"]["amount_cents"] == total
                # the register actor is busy waiting for the card: cancel_payment runs beside it
                assert (await c.request("cancel_payment"))["cancelling"] is True
            assert [e.code for e in errors] == ["card_cancelled"]
            snap = await c.wait_snapshot(lambda s: s["payment"] and s["payment"]["state"] == "cancelled")
            assert "nothing was charged" in snap["state"]["payment"]["message"]
            with pytest.raises(ClientError) as e:
                await c.request("cancel_payment")
            assert e.value.code == "no_payment"
    assert len(spin.aborts) == 1 and spin.batch[spin.aborts[0]].state == "canceled"


async def test_lost_answer_resolved_by_status_one_charge(rig: Rig) -> None:
    hub, spin = rig.hub, rig.spin
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            spin.mode = "lose_answer"
            paid = await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
    assert len(spin.sales) == 1
    money = [p for p, _ in spin.requests if p != "/v2/Common/TerminalStatus"]
    assert money == ["/v2/Payment/Sale", "/v2/Payment/Status"]  # asked, never re-sent
    assert sale_record(hub, paid["receipt_number"]).receipt.tenders[0].reference == spin.sales[0][0]


async def test_terminal_timeout_with_the_outcome_recovered(rig: Rig) -> None:
    """The proxy gives up (2007) although the terminal approved: the outcome is fetched, the sale done."""
    hub, spin = rig.hub, rig.spin
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            spin.mode, spin.proxy_timeout_s = "timeout", 0.5
            paid = await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
    assert paid["total_cents"] == total and len(spin.sales) == 1


async def test_terminal_offline_cash_only(rig: Rig) -> None:
    hub, spin = rig.hub, rig.spin
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            spin.mode = "offline"
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            assert e.value.code in ("card_offline", "terminal_offline")
            snap = await c.wait_snapshot(lambda s: s["terminal"]["cash_only"], timeout=15)
            assert "cash only" in snap["state"]["terminal"]["message"].lower()
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
            assert paid["receipt_number"] >= 1
    assert all(ref not in spin.batch for ref, _ in spin.sales)  # nothing was charged


async def test_void_and_return_to_the_card(rig: Rig) -> None:
    hub, spin = rig.hub, rig.spin
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            first = await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            ref = spin.sales[-1][0]
            await c.request("void_sale", receipt_number=first["receipt_number"], approval=APPROVAL)
            assert spin.batch[ref].voided
            assert sale_record(hub, first["receipt_number"]).voided
            total = await cart_of_one(c, hub)
            second = await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            rec = sale_record(hub, second["receipt_number"])
            line = rec.receipt.lines[0].line_id
            ret = await c.request(
                "return_items",
                receipt_number=second["receipt_number"],
                lines={str(line): 1},
                approval=APPROVAL,
                refund_kind="original",
            )
            assert ret["refund_cents"] == total
    assert spin.returns and spin.returns[0][1] == total
    assert not spin.batch[spin.sales[-1][0]].voided  # a return is its own transaction, not a void


async def test_storage_error_at_commit_voids_the_charge(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    hub, spin = rig.hub, rig.spin
    real = hub.writer.write

    async def failing(fn: Any, *, label: str = "write") -> Any:
        if label == "sale":
            raise lmdb.DiskError("No space left on device")
        return await real(fn, label=label)

    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            monkeypatch.setattr(hub.writer, "write", failing)
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            assert e.value.code == "sale_not_saved" and "given back" in e.value.message
    # one attempt (answered, not crashed and redelivered), charged and then voided
    [(ref, amount)] = spin.sales
    assert amount == total and spin.batch[ref].voided
    assert hub.store.get("sales", u64(1), SaleRecord) is None


async def test_cancelled_during_commit_voids_the_charge(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pay`` cancelled after the approval (the register actor stopped mid-commit): the void is shielded."""
    from hub.commands import Request
    from hub.sale import protocol as p
    from hub.sale.pay import pay

    hub, spin = rig.hub, rig.spin
    real = hub.writer.write
    entered = trio.Event()

    async def stuck(fn: Any, *, label: str = "write") -> Any:
        if label == "sale":
            entered.set()
            await trio.sleep_forever()
        return await real(fn, label=label)

    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            monkeypatch.setattr(hub.writer, "write", stuck)
            actor = hub.registers["R1"]
            msg = p.Pay(id="cancel-me", tenders=[p.TenderLine(kind="debit", amount_cents=total)])
            req = Request(hub=hub, msg=msg, register_id="R1", session=actor.live_session())
            async with trio.open_nursery() as n:
                n.start_soon(pay, req, msg)
                await entered.wait()
                n.cancel_scope.cancel()
    [(ref, _)] = spin.sales
    assert spin.batch[ref].voided


# --------------------------------------------------------------------------- cashless ATM


async def test_cashless_atm_rounds_up_change_from_drawer_and_z_report_ties(rig: Rig) -> None:
    from hub.backoffice.records import day_reports

    hub, spin = rig.hub, rig.spin
    await price(hub, "FLW-001", 4310)

    def drawer() -> DrawerSession:
        drawer_id = OPEN_DRAWERS.read(hub.store, "R1")
        assert drawer_id is not None
        session = hub.store.get("drawers", text(drawer_id), DrawerSession)
        assert session is not None
        return session

    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            assert total == 4310
            snap = await c.wait_snapshot(lambda s: s["terminal"]["cashless_atm"] is not None)
            assert snap["state"]["terminal"]["cashless_atm"] == {"increment_cents": 500, "fee_cents": 300}
            paid = await c.request("pay", tenders=[{"kind": "cashless_atm", "amount_cents": total}])
            assert paid["change_cents"] == 190
            assert spin.sales[-1][1] == 4800  # $45.00 withdrawn + $3.00 fee
            receipt = sale_record(hub, paid["receipt_number"]).receipt
            [t] = receipt.tenders
            assert (t.kind, t.amount_cents, t.fee_cents) == ("cashless_atm", 4500, 300)
            html = render_receipt_html(receipt)
            assert "Cashless ATM withdrawal" in html and "$45.00" in html
            assert "ATM fee (not part of the sale)" in html and "$3.00" in html and "$1.90" in html
            assert drawer().expected_cents == 26000 - 190
            assert [(e.kind, e.amount_cents) for e in drawer().events] == [("atm_change", 190)]
            z = day_reports(
                hub.store,
                datetime.now(UTC).astimezone(hub.config.zone).date(),
                hub.config.store.time_zone,
                now=datetime.now(UTC),
            ).store
            assert z.tie_out.ok and z.total_cents == 4310 and z.tenders == {"cashless_atm": 4310}
            assert (z.atm_withdrawn_cents, z.atm_change_cents, z.atm_fees_cents) == (4500, 190, 300)
            assert z.cash_from_sales_cents == z.drawer_cash_sales_cents == -190
            # voided the same day: withdrawal and fee voided at the terminal, the change comes back
            void = await c.request("void_sale", receipt_number=paid["receipt_number"], approval=APPROVAL)
            assert (void["refund_cents"], void["change_back_cents"]) == (0, 190)
    assert spin.batch[spin.sales[-1][0]].voided
    assert drawer().expected_cents == 26000


async def test_cashless_atm_refused_when_the_drawer_cannot_give_change(rig: Rig) -> None:
    hub, spin = rig.hub, rig.spin
    await price(hub, "FLW-001", 4310)
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            await c.request(
                "open_drawer", counted={"C25": 4}, witness="tom", witness_pin=PINS["tom"]
            )  # $1.00
            await c.wait_snapshot(lambda s: s["terminal"]["up"], timeout=15)
            total = await cart_of_one(c, hub)
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "cashless_atm", "amount_cents": total}])
            assert e.value.code == "not_enough_change"
    assert spin.sales == []  # refused before the card was charged


# --------------------------------------------------------------------------- pay by bank


async def test_pay_by_bank_approved_declined_and_refunded(rig: Rig) -> None:
    hub, bank = rig.hub, rig.bank
    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            bank.auto = "decline"
            with pytest.raises(ClientError) as e:
                await c.request(
                    "pay", tenders=[{"kind": "pay_by_bank", "amount_cents": total, "phone": "+15555550100"}]
                )
            assert e.value.code == "bank_declined"
            bank.auto = None
            result: list[Any] = []

            async def pay() -> None:
                result.append(
                    await c.request(
                        "pay",
                        tenders=[{"kind": "pay_by_bank", "amount_cents": total, "phone": "+15555550100"}],
                    )
                )

            async with trio.open_nursery() as n:
                n.start_soon(pay)
                await c.wait_snapshot(
                    lambda s: (
                        s["payment"]
                        and s["payment"]["tender"] == "pay_by_bank"
                        and s["payment"]["state"] == "waiting"
                    )
                )
                while not bank.waiting:
                    await trio.sleep(0.01)
                bank.approve()  # the customer taps Approve on the phone
            [paid] = result
            [t] = sale_record(hub, paid["receipt_number"]).receipt.tenders
            assert t.kind == "pay_by_bank" and t.amount_cents == total
            await c.request("void_sale", receipt_number=paid["receipt_number"], approval=APPROVAL)
    assert len(bank.reversals) == 1 and bank.transactions[bank.reversals[0][0]]["status"] == "void"
    assert len(bank.requests) == 2 and bank.requests[0][0] != bank.requests[1][0]


async def test_pay_by_bank_cancelled_by_the_budtender(rig: Rig) -> None:
    hub, bank = rig.hub, rig.bank
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            errors: list[ClientError] = []

            async def pay() -> None:
                try:
                    await c.request(
                        "pay",
                        tenders=[{"kind": "pay_by_bank", "amount_cents": total, "phone": "+15555550109"}],
                    )
                except ClientError as exc:
                    errors.append(exc)

            async with trio.open_nursery() as n:
                n.start_soon(pay)
                while not bank.waiting:
                    await trio.sleep(0.01)
                await c.request("cancel_payment")
            assert [e.code for e in errors] == ["bank_cancelled"]
            snap = await c.wait_snapshot(lambda s: s["payment"] and s["payment"]["state"] == "cancelled")
            assert snap["state"]["payment"]["tender"] == "pay_by_bank"
    assert len(bank.requests) == 1 and not bank.transactions and not bank.reversals  # nothing was charged


# --------------------------------------------------------------------------- never orphaned


def audit_actions(hub: Any) -> list[AuditEntry]:
    return [decode(raw, AuditEntry) for _, raw in iter_entries(hub.store)]


def failed_total(hub: Any) -> float:
    value = hub.metrics.registry.get_sample_value("storehub_card_reversals_failed_total")
    return float(value or 0)


async def until(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.05)


async def test_failed_reversals_start_at_zero(rig: Rig) -> None:
    assert rig.hub.metrics.registry.get_sample_value("storehub_card_reversals_failed_total") == 0
    assert rig.hub.metrics.registry.get_sample_value("storehub_card_reversals_pending") == 0


async def test_partial_approval_whose_void_fails_is_told_as_money_taken(rig: Rig) -> None:
    """0001 Partial Approval, and the terminal does not confirm the void: the register hears "money may
    have been taken: void it at the terminal" (not a decline), the reversal is pending, audited, counted,
    and retried until the terminal confirms."""
    hub, spin = rig.hub, rig.spin
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            spin.partial_cents = total // 2
            spin.void_mode = "refuse"
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            assert e.value.code == "card_unresolved", e.value
            assert "void it at the terminal" in e.value.message
            [(ref, _)] = spin.sales
            await until(lambda: bool(reversals.pending(hub)), "pending reversal")
            [rev] = reversals.pending(hub)
            assert (rev.reference, rev.amount_cents, rev.device_id) == (ref, total // 2, "spin-1")
            assert failed_total(hub) >= 1
            pending = [a for a in audit_actions(hub) if a.action == "card_reversal_pending"]
            assert pending and pending[0].detail["reference"] == ref
            assert not spin.batch[ref].voided
            spin.void_mode = "ok"
            assert await reversals.retry_once(hub) == 0
    assert spin.batch[ref].voided
    assert any(a.action == "card_reversal_done" for a in audit_actions(hub))
    assert hub.metrics.registry.get_sample_value("storehub_card_reversals_pending") == 0


async def test_late_approval_after_the_hub_gave_up_is_voided(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub stops waiting (its wait shortened here): it asks the terminal to cancel; the customer had
    already tapped, so the approval still comes — nobody waits for it, and it is voided and audited."""
    hub, spin = rig.hub, rig.spin
    monkeypatch.setattr(TerminalHandle, "wait_s", property(lambda self: 1.0))
    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            spin.mode = "wait"
            spin.ignore_abort = True
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            assert e.value.code == "card_timeout"
            # on a loaded machine the hub may give up before its Charge even reached the terminal
            await until(lambda: len(spin.sales) == 1, "the Charge reached the terminal")
            [(ref, _)] = spin.sales
            await until(lambda: ref in spin.aborts, "CancelCharge reached the terminal")
            await until(lambda: ref in spin.waiting, "the terminal holds the sale for the card")
            spin.finish_waiting(approve=True)
            await until(lambda: spin.batch.get(ref) is not None and spin.batch[ref].voided, "late void")
            # the terminal voids before it answers; the hub audits the void only after that answer
            # (hub/sale/reversals.py _retry), so the audit entry is a later fact to wait for
            await until(
                lambda: any(a.action == "card_reversal_done" for a in audit_actions(hub)), "void audited"
            )
    actions = {a.action: a for a in audit_actions(hub)}
    assert actions["card_charge_orphaned"].detail["reference"] == ref
    assert actions["card_reversal_done"].detail["reference"] == ref
    assert reversals.pending(hub) == []


async def test_sale_not_saved_and_void_not_confirmed(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit fails and the terminal does not confirm the void: the register hears "NOT given back —
    void it at the terminal", never "given back"; audited, counted, pending and retried until confirmed."""
    hub, spin = rig.hub, rig.spin
    real = hub.writer.write

    async def failing(fn: Any, *, label: str = "write") -> Any:
        if label == "sale":
            raise lmdb.DiskError("No space left on device")
        return await real(fn, label=label)

    with trio.fail_after(40):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            monkeypatch.setattr(hub.writer, "write", failing)
            spin.void_mode = "refuse"
            with pytest.raises(ClientError) as e:
                await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            assert e.value.code == "payment_not_given_back", e.value
            assert "NOT given back" in e.value.message and "void it at the terminal" in e.value.message
            [(ref, _)] = spin.sales
            assert not spin.batch[ref].voided
            [rev] = reversals.pending(hub)
            assert (rev.reference, rev.amount_cents) == (ref, total)
            assert failed_total(hub) == 1
            entry = next(a for a in audit_actions(hub) if a.action == "card_reversal_pending")
            assert entry.detail["reference"] == ref and entry.register == "R1"
            assert await reversals.retry_once(hub) == 1  # still refused: kept
            spin.void_mode = "ok"
            assert await reversals.retry_once(hub) == 0
    assert spin.batch[ref].voided and reversals.pending(hub) == []


async def test_void_sale_whose_commit_fails_is_finished_on_retry(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The void's intent is saved first; the card is voided; the final commit fails (injected): the store
    still says the void is under way, and a retry finds the card voided already and finishes the void."""
    hub, spin = rig.hub, rig.spin
    real = hub.writer.write

    async def failing(fn: Any, *, label: str = "write") -> Any:
        if label == "void":
            raise lmdb.DiskError("No space left on device")
        return await real(fn, label=label)

    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            sold = await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            number = sold["receipt_number"]
            ref = spin.sales[-1][0]
            monkeypatch.setattr(hub.writer, "write", failing)
            with pytest.raises(ClientError):
                await c.request("void_sale", receipt_number=number, approval=APPROVAL)
            assert spin.batch[ref].voided and not sale_record(hub, number).voided
            intent = VOID_INTENTS.read(hub.store, number)
            assert intent is not None and intent.references == (ref,)
            monkeypatch.setattr(hub.writer, "write", real)
            done = await c.request("void_sale", receipt_number=number, approval=APPROVAL)
    assert done["receipt_number"] == number and sale_record(hub, number).voided
    assert VOID_INTENTS.read(hub.store, number) is None
    # the failed void was answered, then retried: the retry found it voided (Status)
    assert [r for r, _ in spin.voids].count(ref) >= 2 and spin.batch[ref].voided


@pytest.mark.parametrize("failure", [lmdb.DiskError, lmdb.MapFullError])
async def test_void_sale_whose_commit_hits_a_storage_error_is_answered_not_crashed(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, failure: type[lmdb.Error]
) -> None:
    """A storage error in the void's final commit is answered as a clear error (storage_full): the register
    actor does not crash, so the message is neither redelivered (a second terminal void) nor quarantined."""
    hub, spin = rig.hub, rig.spin
    real = hub.writer.write

    async def failing(fn: Any, *, label: str = "write") -> Any:
        if label == "void":
            raise failure("No space left on device")
        return await real(fn, label=label)

    with trio.fail_after(60):
        async with connect(ws_url(hub)) as c:
            await ready(c, hub)
            total = await cart_of_one(c, hub)
            sold = await c.request("pay", tenders=[{"kind": "debit", "amount_cents": total}])
            number = sold["receipt_number"]
            ref = spin.sales[-1][0]
            monkeypatch.setattr(hub.writer, "write", failing)
            with pytest.raises(ClientError) as refused:
                await c.request("void_sale", receipt_number=number, approval=APPROVAL)
            assert refused.value.code == "storage_full"
            assert "Void the sale again" in refused.value.message
            assert [r for r, _ in spin.voids].count(ref) == 1  # handled once: not redelivered
            with hub.store.env.begin() as txn:
                assert not list(txn.cursor(db=hub.store.db("quarantine")))
            assert spin.batch[ref].voided and not sale_record(hub, number).voided
            monkeypatch.setattr(hub.writer, "write", real)
            done = await c.request("void_sale", receipt_number=number, approval=APPROVAL)
    assert done["receipt_number"] == number and sale_record(hub, number).voided
    assert VOID_INTENTS.read(hub.store, number) is None
