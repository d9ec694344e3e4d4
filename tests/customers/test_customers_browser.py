"""Customers, promotions and labels in a real headless Chromium against ``storehub demo``: at the register
a budtender scans a licence, enrols the customer with their consent and finds them again by phone, then
prints a package's exit label from the register (the simulated Zebra receives the state's required text);
in the back office a manager looks the customer up (profile and history) and edits a promotion, whose
preview and next scan show the new discount. Screenshots under test-output/<test>/."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Playwright, expect, sync_playwright

from tests.backoffice.test_backoffice_browser import office_login
from tests.customers.conftest import licence
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    HubProcess,
    Shots,
    pair_and_login,
    wedge_scan,
)


@pytest.fixture
def demo_hub(tmp_path: Path, output_dir: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "data", output_dir / "hub.log", devices=True)  # the simulated label printer
    h.start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


def _page(pw: Playwright, profile: Path, height: int = 900) -> Any:
    ctx = pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={**VIEWPORT, "height": height},
    )
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.set_default_timeout(15_000)
    return ctx, page


@pytest.fixture
def browser_pages(pw: Playwright, tmp_path: Path) -> Iterator[tuple[Page, Page]]:
    reg_ctx, reg = _page(pw, tmp_path / "register-profile")
    office_ctx, office = _page(pw, tmp_path / "office-profile", 1000)
    errors: list[str] = []
    for p in (reg, office):
        p.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield reg, office
    finally:
        reg_ctx.close()
        office_ctx.close()
    assert not errors, f"script errors on the page: {errors}"


def get(hub: HubProcess, path: str, token: str) -> bytes:
    req = urllib.request.Request(hub.url + path, headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read()  # type: ignore[no-any-return]


def open_tab(page: Page, tab: str) -> None:
    """The back office groups its tabs (Money, Inventory, State, Staff & devices, Audit): open the group first."""
    group = page.locator(f'#tabs [data-tab="{tab}"]').get_attribute("data-group")
    page.click(f'#tab-groups [data-group="{group}"]')
    page.click(f'#tabs [data-tab="{tab}"]')


def test_enrol_lookup_label_and_promotion_edit(
    demo_hub: HubProcess, browser_pages: tuple[Page, Page], output_dir: Path
) -> None:
    reg, office = browser_pages
    shot = Shots(reg, output_dir)
    scan = licence("C4440000001", given="ROBIN", family="ALVAREZ")

    # ---- the register: scan the licence, enrol with consent. The demo panel sends the scan exactly as
    # a scanner would (a wedge scan of a 300-character licence can split on a loaded CI machine).
    pair_and_login(reg, demo_hub)
    reg.click("#btn-demo")
    reg.click('#demo-scans button:has-text("Licence: adult, out of state")')
    expect(reg.locator("#notice")).to_contain_text("Checked in")
    reg.click("#demo-close")
    expect(reg.locator("#btn-customer")).to_be_visible()
    reg.click("#btn-customer")
    expect(reg.locator("#enrol-who")).to_contain_text("Casey Nguyen")
    expect(reg.locator("#enrol-who")).to_contain_text("not enrolled yet")
    reg.fill("#reg-enrol-phone", "(916) 555-0188")
    reg.check("#reg-consent-profile")
    reg.check("#reg-consent-sms")
    shot("enrol-form")
    reg.click("#reg-enrol-submit")
    expect(reg.locator("#customer-dialog-status")).to_contain_text("Enrolled Casey Nguyen")
    # a licence pasted into the form prefills too (a scanner in "serial" mode, the back office)
    reg.fill("#reg-enrol-licence", scan)
    reg.locator("#reg-enrol-licence").dispatch_event("change")
    expect(reg.locator("#enrol-who")).to_contain_text("Robin Alvarez")
    # ---- and find them again by phone
    reg.fill("#reg-find-q", "916 555 0188")
    reg.click("#reg-find-form button")
    expect(reg.locator("#reg-found li")).to_have_count(1)
    expect(reg.locator("#reg-found li")).to_contain_text("Casey Nguyen")
    shot("found-by-phone")
    reg.click("#customer-dialog-close")

    # ---- a label printed from the register
    token = reg.evaluate("() => sessionStorage.getItem('storehub.session_token')")
    scans = json.loads(urllib.request.urlopen(demo_hub.url + "/api/demo/scans", timeout=5).read())
    pick = next(s for s in scans if s["kind"] == "package" and "bulk" not in s["label"].lower())
    tag, name = pick["data"], pick["label"].removeprefix("Package: ")
    wedge_scan(reg, tag)  # a package tag from the keyboard-wedge scanner
    expect(reg.locator("#cart")).to_contain_text(name)
    reg.click("#btn-labels")
    button = reg.locator(f'#label-lines button[data-tag="{tag}"]')
    expect(button).to_be_visible()
    shot("labels-dialog")
    button.click()
    expect(reg.locator("#labels-dialog-status")).to_contain_text("sent to the label printer")
    printed = b""
    for _ in range(50):
        printed = get(demo_hub, "/api/demo/label-printer", token)
        if tag.encode() in printed:
            break
        reg.wait_for_timeout(100)
    text = printed.decode("utf-8", "replace")
    assert tag in text and "^BCN" in text
    assert "GOVERNMENT WARNING" in text or "WARNING" in text.upper()
    reg.click("#labels-dialog-close")

    # ---- the back office: the customer looked up, then a promotion edited
    oshot = Shots(office, output_dir / "office")
    office_login(office, demo_hub, "maria", "3333")
    expect(office.locator("#screen-office")).to_be_visible()
    open_tab(office, "customers")
    office.fill("#find-phone", "9165550188")
    office.click("#customer-find button")
    link = office.locator("#found a")
    expect(link).to_have_text("Casey Nguyen")
    link.click()
    expect(office.locator("#profile-name")).to_have_text("Casey Nguyen")
    expect(office.locator('[data-consent="sms"]')).to_have_text("sms: yes")
    expect(office.locator('[data-consent="marketing"]')).to_have_text("marketing: no")
    assert "null" not in office.locator("#page").inner_text()
    oshot("customer-profile")

    open_tab(office, "promotions")
    row = office.locator('#promotions tr[data-promotion="topicals-15"]')
    expect(row).to_be_visible()
    row.locator("a.edit-promotion").click()
    form = office.locator("#promotion-form")
    expect(form).to_be_visible()
    form.locator('input[name="name"]').fill("Topicals 25% off")
    form.locator('input[name="percent"]').fill("25")
    office.fill("#preview-cart", "TOP-001")
    office.click("#preview-run")
    expect(office.locator("#preview-lines")).to_contain_text("Topicals 25% off")
    expect(office.locator("#preview-saving")).to_have_text("−$11.25")  # 25 % of $45.00
    oshot("promotion-preview")
    office.fill("#promotion-reason", "manager's special this week")
    office.click("#promotion-save")
    expect(office.locator('#promotions tr[data-promotion="topicals-15"]')).to_contain_text("Topicals 25% off")
    oshot("promotion-saved")
    mtoken = office.evaluate("() => sessionStorage.getItem('backoffice.storehub.session_token')")
    promos = json.loads(get(demo_hub, "/api/catalogue/promotions", mtoken))["promotions"]
    saved = next(p for p in promos if p["promotion"]["id"] == "topicals-15")
    assert saved["promotion"]["percent_bp"] == 2500 and saved["changed_by"] == "maria"
    assert saved["reason"] == "manager's special this week"

    # ---- an import: the dry run lists the change, then it runs with a progress bar
    csv_file = output_dir / "products.csv"
    csv_file.write_text(
        "sku,name,brand,category,sold_by,price\nNEW-101,Comet Gummies 10x10mg,Orbit,edible,each,18.00\n"
        "TOP-002,Cooling Lotion 200mg,Mary's,topical,each,33.00\n",
        encoding="utf-8",
    )
    open_tab(office, "catalogue")
    office.locator('#import-form input[name="products"]').set_input_files(str(csv_file))
    office.locator('#import-form input[name="reason"]').fill("new line from Orbit")
    office.click('#import-form button[type="submit"]')
    expect(office.locator("#import-diff")).to_contain_text("product TOP-002: price_cents")
    oshot("import-dry-run")
    office.click("#import-apply")
    expect(office.locator("#message")).to_contain_text("Imported 2 records")
    expect(office.locator("#import-progress")).to_have_attribute("value", "2")
    oshot("import-done")
    office.goto(demo_hub.url + "/backoffice/#catalogue?id=TOP-002")
    expect(office.locator("#page h1")).to_contain_text("Cooling Lotion")
    expect(office.locator('#product-form input[name="price"]')).to_have_value("33.00")
    assert "null" not in office.locator("#page").inner_text()
    office.locator("#packages tr").first.locator('button[data-print="shelf"]').click()
    expect(office.locator("#message")).to_contain_text("Shelf label sent to label-1")
    oshot("product-page")
