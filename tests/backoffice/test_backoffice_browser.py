"""The back office in Chromium: a manager closes a drawer with a blind count and sees the variance; the EOD
page renders its charts; a budtender sees none of it. Screenshots under test-output/<test>/.

The hub runs as ``python -m hub.cli demo`` (the e2e suite's HubProcess); the register's side of the day is
driven over the live protocol with hub.client, the manager's side in the browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import trio
from playwright.sync_api import Page, Playwright, expect, sync_playwright

from hub.client import connect
from tests.backoffice.office_helpers import FLOAT, pieces
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, HubProcess, Shots

OFFICE_CODE = "33333333"


@pytest.fixture
def demo_hub(tmp_path: Path, output_dir: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "data", output_dir / "hub.log")
    h.start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture
def office_page(pw: Playwright, tmp_path: Path) -> Iterator[Page]:
    ctx = pw.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={**VIEWPORT, "height": 1000},
    )
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        ctx.close()
    assert not errors, f"script errors on the page: {errors}"


def register_day(hub: HubProcess) -> dict[str, Any]:
    """At R1: Ana opens the drawer (Maria witnesses) and sells one item for cash."""

    async def run() -> dict[str, Any]:
        async with connect(f"ws://127.0.0.1:{hub.ws_port}") as c:
            await c.pair("11111111")
            await c.login("ana", "1111")
            await c.request("open_drawer", counted=FLOAT, witness="maria", witness_pin="3333")
            await c.request(
                "check_in_manual",
                birth_date=date(1985, 5, 5).isoformat(),
                id_expiry=date(2031, 1, 1).isoformat(),
                id_jurisdiction="CA",
                id_number="D1234567",
                reason="demo: card will not scan",
            )
            await c.request("add_product", product_id="FLW-001", quantity=1)
            snap = await c.wait_snapshot(lambda s: s.get("cart") and s["cart"]["lines"])
            total = snap["state"]["cart"]["total_cents"]
            paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": total}])
            return {"total_cents": total, **paid}

    async def bounded() -> dict[str, Any]:
        with trio.fail_after(20):
            return await run()

    return trio.run(bounded)


def open_tab(page: Page, tab: str) -> None:
    """Open a back-office page: its group (Money, Inventory, State, Staff & devices, Audit), then the page."""
    group = page.locator(f'#tabs [data-tab="{tab}"]').get_attribute("data-group")
    page.click(f'#tab-groups [data-group="{group}"]')
    page.click(f'#tabs [data-tab="{tab}"]')
    expect(page.locator(f'#tabs [data-tab="{tab}"]')).to_have_attribute("aria-current", "page")


def office_login(page: Page, hub: HubProcess, staff: str, pin: str) -> None:
    page.goto(hub.url + "/backoffice/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    expect(page.locator("#screen-pair")).to_be_visible()
    page.fill("#pair-code", OFFICE_CODE)
    page.click("#pair-submit")
    expect(page.locator("#screen-login")).to_be_visible()
    page.fill("#login-staff", staff)
    page.fill("#login-pin", pin)
    page.click("#login-submit")


def test_manager_closes_a_drawer_and_reads_the_eod_charts(
    demo_hub: HubProcess, office_page: Page, output_dir: Path
) -> None:
    page = office_page
    shot = Shots(page, output_dir)
    sale = register_day(demo_hub)
    expected = 26_000 + sale["total_cents"]

    office_login(page, demo_hub, "maria", "3333")
    expect(page.locator("#screen-office")).to_be_visible()
    expect(page.locator("#readiness")).to_be_visible()
    shot("readiness")

    open_tab(page, "drawers")
    card = page.locator('.drawer[data-register="R1"]')
    form = card.locator("form.count-form")
    expect(form).to_be_visible()
    # blind: nothing on the page says what the drawer should hold
    expect(card.locator("td.expected")).to_have_count(0)
    money = f"{expected // 100}.{expected % 100:02d}"
    assert money not in page.content()
    for code, n in pieces(expected - 500).items():
        form.locator(f'input[name="{code}"]').fill(str(n))
    shot("blind-count-entered")
    form.locator('button[type="submit"]').click()

    variance = card.locator("td.variance")
    expect(variance).to_have_text("$5.00 short")
    expect(card.locator("td.expected")).to_have_text(f"${money}")
    expect(page.locator("#message")).to_contain_text("is $5.00 short")
    shot("variance-shown")
    card.locator('form.signoff-form input[name="note"]').fill("short $5: change given twice")
    card.locator("form.signoff-form button").click()
    expect(card.locator("text=maria: short $5: change given twice")).to_be_visible()
    shot("signed-off")

    open_tab(page, "eod")
    expect(page.locator("#tie-out")).to_contain_text("Ties out")
    for chart in ("#chart-hours", "#chart-tenders", "#chart-variance"):
        expect(page.locator(f"{chart} svg")).to_be_visible()
    assert page.locator("#chart-hours svg rect").count() >= 1
    expect(page.locator('#chart-variance rect[data-value="-500"]')).to_have_count(1)
    expect(page.locator("#chart-tenders svg text").first).to_have_text("cash")
    expect(page.locator("#eod-figures")).to_contain_text("$5.00 short")
    shot("eod-charts")

    # the printable Z report renders its own inline SVG charts
    with page.expect_popup() as popup:
        page.click("#eod-print")
    printable = popup.value
    expect(printable.locator("svg").first).to_be_visible()
    expect(printable.locator("body")).to_contain_text("Ties out")
    printable.screenshot(path=str(output_dir / "99-printable-z-report.png"), full_page=True)
    printable.close()


def test_budtender_sees_none_of_the_back_office(
    demo_hub: HubProcess, office_page: Page, output_dir: Path
) -> None:
    page = office_page
    office_login(page, demo_hub, "ana", "1111")
    expect(page.locator("#screen-denied")).to_be_visible()
    expect(page.locator("#screen-office")).to_be_hidden()
    assert page.locator("#page").inner_text() == ""
    Shots(page, output_dir)("budtender-denied")
