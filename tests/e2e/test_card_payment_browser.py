"""Card payment states in the register's payment dialog, in Chromium, against ``storehub demo`` with its
simulated devices (the card terminal is the SPIn emulator, sandbox/spin.py, driven through the demo's
``demo_terminal`` command): waiting → cancel at the terminal; declined with a plain reason, then approved
on retry; the terminal timing out with the real outcome fetched from it. Screenshots in test-output/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import HubProcess, Shots, pair_and_login, wedge_scan
from tests.e2e.test_register_browser import add_from_search, demo_store, ensure_drawer_open


@pytest.fixture
def hub(tmp_path: Path, output_dir: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "data", output_dir / "hub.log", devices=True)
    h.start(timeout=30)
    try:
        yield h
    finally:
        h.stop()


def terminal(page: Page, mode: str, **extra: Any) -> None:
    page.evaluate("(f) => window.storehub.live.request('demo_terminal', f)", {"mode": mode, **extra})


def sale_to_payment(page: Page, hub: HubProcess) -> None:
    pair_and_login(page, hub)
    wedge_scan(page, demo_store().customer("adult").id_scan)
    expect(page.locator("#decision")).to_have_class(re.compile(r"\ballowed\b"))
    add_from_search(page, "Blue Dream 3.5", "FLW-001")
    expect(page.locator("#cart-lines .line")).to_have_count(1)
    ensure_drawer_open(page)
    page.click("#btn-pay")
    expect(page.locator("#dlg-tender")).to_be_visible()
    page.click("#tender-debit-all")


def test_waiting_for_the_card_then_cancel_at_the_terminal(page: Page, hub: HubProcess, shot: Shots) -> None:
    sale_to_payment(page, hub)
    terminal(page, "wait")
    page.click("#tender-submit")
    status = page.locator("#card-status")
    expect(status).to_have_attribute("data-state", "waiting")
    expect(page.locator("#card-status-title")).to_contain_text("Waiting for the card")
    # the terminal's own progress (SPIn intermediate status) reaches the screen
    expect(page.locator("#card-status-text")).to_contain_text("Terminal: Insert, tap or swipe card")
    expect(page.locator("#tender-submit")).to_be_disabled()  # Complete sale waits for the terminal
    expect(page.locator("#card-cancel")).to_be_visible()
    shot("waiting-for-card")
    page.click("#card-cancel")
    expect(status).to_have_attribute("data-state", "cancelled")
    expect(page.locator("#card-status-text")).to_contain_text("nothing was charged")
    expect(page.locator("#card-cancel")).to_be_hidden()
    expect(page.locator("#tender-submit")).to_be_enabled()
    shot("cancelled")


def test_declined_with_a_plain_reason_then_approved_on_retry(
    page: Page, hub: HubProcess, shot: Shots
) -> None:
    sale_to_payment(page, hub)
    terminal(page, "decline", decline_code="51")
    page.click("#tender-submit")
    status = page.locator("#card-status")
    expect(status).to_have_attribute("data-state", "declined")
    text = page.locator("#card-status-text")
    expect(text).to_contain_text("not enough money")
    expect(text).to_contain_text("Ask for another card")
    expect(page.locator("#dlg-tender")).not_to_contain_text(re.compile("insuff", re.IGNORECASE))
    shot("declined")
    terminal(page, "approve")
    page.click("#tender-submit")
    expect(page.locator("#dlg-receipt")).to_be_visible()
    receipt = page.frame_locator("#receipt-frame")
    expect(receipt.locator("body")).to_contain_text("Debit ****0119")
    shot("approved-receipt")


def test_terminal_timeout_with_the_outcome_fetched(page: Page, hub: HubProcess, shot: Shots) -> None:
    """The customer never presents the card; the terminal gives up; the register asks it what happened and
    says so: nothing was charged. Then a retry goes through."""
    sale_to_payment(page, hub)
    terminal(page, "wait", timeout_seconds=1.5)
    page.click("#tender-submit")
    status = page.locator("#card-status")
    expect(status).to_have_attribute("data-state", "waiting")
    expect(status).to_have_attribute("data-state", "timed_out", timeout=15_000)
    expect(page.locator("#card-status-title")).to_contain_text("timed out")
    expect(page.locator("#card-status-text")).to_contain_text("confirms nothing was charged")
    shot("timed-out-outcome-fetched")
    terminal(page, "approve")
    page.click("#tender-submit")
    expect(page.locator("#dlg-receipt")).to_be_visible()
    shot("retried-receipt")


def test_pay_by_bank_waits_for_the_customer_then_completes(page: Page, hub: HubProcess, shot: Shots) -> None:
    """The demo's pay-by-bank emulator (Aeropay-shaped) approves on the customer's phone two seconds later."""
    sale_to_payment(page, hub)
    expect(page.locator("#tender-bank-row")).to_be_visible()
    page.fill("#tender-phone", "+15555550100")
    page.click("#tender-bank")
    expect(page.locator("#card-status-title")).to_contain_text("Waiting for the customer's approval")
    expect(page.locator("#card-cancel")).to_have_text("Cancel the request")
    expect(page.locator("#tender-submit")).to_be_disabled()
    shot("waiting-for-the-app")
    expect(page.locator("#dlg-receipt")).to_be_visible(timeout=15_000)
    expect(page.frame_locator("#receipt-frame").locator("body")).to_contain_text("Pay by bank")
    shot("paid-by-bank")
