"""The register on a phone, a tablet and a desktop, by touch and by keyboard alone, and its customer queue
(issue 15). Chromium at 390×844, 820×1180 and 1366×900; screenshots of each step in test-output/<test>/.
axe-core checks every screen for serious and critical accessibility violations."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import HubProcess, Shots, ensure_drawer_open_by_mouse, open_register, pair, wedge_type
from tests.e2e.test_register_browser import demo_store

HUMAN_GAP_MS = 90  # between a person's key presses (web_ui/shared/wedge.js: a scanner's are < 50 ms)
WIDTHS = {"phone": (390, 844), "tablet": (820, 1180), "desktop": (1366, 900)}
RANGE = {  # the other ends of each class, checked on the way
    "phone": [(360, 640), (430, 932)],
    "tablet": [(768, 1024), (1024, 768)],
    "desktop": [(1280, 800)],
}

# what a budtender's screen must never do, measured in the page: scroll sideways, cut a control off at
# the edge, or offer a touch target under 44 × 44 px (WCAG 2.5.5; Apple and Android guidance)
LAYOUT_PROBLEMS = """() => {
  const out = [];
  const vw = window.innerWidth;
  if (document.documentElement.scrollWidth > vw + 1) out.push(`page is ${document.documentElement.scrollWidth}px wide in ${vw}px`);
  const controls = document.querySelectorAll('button, input:not([type=checkbox]):not([type=radio]), select, textarea, a[href]');
  for (const el of controls) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || el.closest('[hidden]') || getComputedStyle(el).visibility === 'hidden') continue;
    if (el.closest('dialog:not([open])') || el.closest('#demo-panel')) continue;
    const name = (el.id ? '#' + el.id : el.tagName.toLowerCase()) + ' ' + (el.getAttribute('aria-label') || el.textContent || el.name || '').trim().slice(0, 24);
    if (r.height < 44 || r.width < 44) out.push(`${name}: ${Math.round(r.width)}x${Math.round(r.height)}`);
    if (r.left < -1 || r.right > vw + 1) out.push(`${name}: cut off at the edge (${Math.round(r.left)}..${Math.round(r.right)})`);
  }
  return out;
}"""


def layout_ok(page: Page) -> None:
    problems = page.evaluate(LAYOUT_PROBLEMS)
    assert not problems, problems


def in_viewport(page: Page, selector: str) -> bool:
    return bool(
        page.evaluate(
            """(sel) => { const el = document.querySelector(sel); if (!el) return false;
               const r = el.getBoundingClientRect();
               return r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth; }""",
            selector,
        )
    )


def scanner_types(page: Page, data: str) -> None:
    """A keyboard-wedge scanner: the characters and its Enter, typed fast into whatever has focus."""
    wedge_type(page, data + "\n")  # keys stamped a scanner's few ms apart, however busy the machine


@pytest.mark.parametrize("size", list(WIDTHS))
def test_whole_sale_on_each_screen(
    page: Page, hub: HubProcess, shot: Shots, output_dir: Path, size: str
) -> None:
    width, height = WIDTHS[size]
    page.set_viewport_size({"width": width, "height": height})
    store = demo_store()
    open_register(page, hub)
    layout_ok(page)
    assert_accessible(page, output_dir / "axe-pair.json")
    pair(page)
    expect(page.locator("#screen-login")).to_be_visible()
    layout_ok(page)
    assert_accessible(page, output_dir / "axe-login.json")
    shot(f"{size}-login")
    page.fill("#login-staff", "ana")
    for digit in "1111":
        page.click(f'#keypad [data-key="{digit}"]')
    page.click("#login-submit")
    expect(page.locator("#screen-register")).to_be_visible()
    # nothing typed yet: category tiles and products in stock; the drawer's state before the first scan
    expect(page.locator("#tiles .tile").first).to_be_visible()
    expect(page.locator("#results .result").first).to_be_visible()
    expect(page.locator("#drawer-pill")).to_have_text("Drawer closed")
    expect(page.locator("#drawer-closed")).to_be_visible()
    expect(page.locator("h1:visible")).to_have_count(1)  # the register has its one h1
    layout_ok(page)
    shot(f"{size}-ready")
    assert_accessible(page, output_dir / "axe-register-empty.json")

    ensure_drawer_open_by_mouse(page)
    expect(page.locator("#drawer-pill")).to_have_text("Drawer open")
    page.locator("#customer h2").click()
    scanner_types(page, store.customer("adult").id_scan)
    expect(page.locator("#decision")).to_have_class(re.compile(r"\ballowed\b"))
    # browse: a category tile, then a product from it
    page.locator('#tiles [data-category="pre-roll"]').click()
    expect(page.locator('#tiles [data-category="pre-roll"]')).to_have_attribute("aria-pressed", "true")
    page.locator('#results [data-act="add-product"]').first.click()
    expect(page.locator("#cart-lines .line")).to_have_count(1)
    # search and a scanned tag: the newest line is highlighted and scrolled into view
    page.fill("#search", "Blue Dream 3.5")
    page.locator('#results [data-act="add-product"][data-product="FLW-001"]').click()
    expect(page.locator("#cart-lines .line")).to_have_count(2)
    newest = page.locator("#cart-lines .line").last
    expect(newest).to_have_class(re.compile(r"\bfresh\b"))
    # one basis on every line: quantity × unit price, less discounts; tax only in the totals
    lines: list[dict[str, Any]] = page.evaluate(
        "() => window.storehub.ui.state.cart.lines.map(l => ({q: l.quantity, u: l.unit_price_cents, d: l.discount_cents, p: l.price_cents, b: l.base_cents, by: l.sold_by}))"
    )
    for ln in lines:
        assert ln["by"] != "each" or ln["b"] == ln["q"] * ln["u"], ln
        assert ln["p"] == ln["b"] - ln["d"], ln
    shown = [t.strip() for t in page.locator("#cart-lines [data-line-total]").all_inner_texts()]
    assert shown == [f"${ln['p'] // 100}.{ln['p'] % 100:02d}" for ln in lines], shown
    layout_ok(page)
    shot(f"{size}-cart")
    assert_accessible(page, output_dir / "axe-register-cart.json")
    # Pay is on screen without scrolling: the pay bar on phone and tablet, the checkout on the desktop;
    # the class's other sizes too (360 and 430 px handhelds, a tablet in landscape, a 1280 px register)
    for w, hgt in [*RANGE[size], (width, height)]:
        page.set_viewport_size({"width": w, "height": hgt})
        pay = "#paybar-pay" if w < 1100 else "#btn-pay"
        page.evaluate("() => window.scrollTo(0, 0)")
        assert in_viewport(page, pay), f"{pay} is off screen at {w}x{hgt}"
        layout_ok(page)
    expect(page.locator(pay)).to_be_enabled()
    total = page.locator("#cart-total").inner_text()
    page.click(pay)
    expect(page.locator("#dlg-tender")).to_be_visible()
    expect(page.locator("#tender-total")).to_have_text(total)
    # quick cash adds: $20 then $100 is $120 received
    page.click('#tender-quick [data-cash="20"]')
    page.click('#tender-quick [data-cash="100"]')
    expect(page.locator("#tender-cash")).to_have_value("120.00")
    layout_ok(page)
    shot(f"{size}-tender")
    assert_accessible(page, output_dir / "axe-tender.json")
    page.click("#tender-submit")
    expect(page.locator("#dlg-receipt")).to_be_visible()
    expect(page.locator("#receipt-close")).to_be_focused()
    layout_ok(page)
    shot(f"{size}-receipt")
    page.click("#receipt-close")
    expect(page.locator("#dlg-receipt")).to_be_hidden()
    expect(page.locator("#customer")).to_contain_text("Scan the customer's ID")
    shot(f"{size}-after-sale")


def test_whole_sale_by_keyboard_alone(page: Page, hub: HubProcess, shot: Shots, output_dir: Path) -> None:
    """No mouse from login to the next customer: a scanner's characters arrive as keys (not counted as
    the budtender's); every key the budtender presses is counted and the total is bounded."""
    page.set_viewport_size({"width": 1366, "height": 900})
    store = demo_store()
    pressed: list[str] = []

    # a person's keys come a little apart (a scanner's come within a few ms: that is how the wedge
    # tells them apart), so each counted key is followed by a human pause
    def press(*keys: str) -> None:
        for k in keys:
            pressed.append(k)
            page.keyboard.press(k)
            page.wait_for_timeout(HUMAN_GAP_MS)

    def type_(text: str) -> None:
        for ch in text:
            press(ch)

    open_register(page, hub)
    pair(page)
    expect(page.locator("#login-staff")).to_be_focused()
    type_("ana")
    press("Tab")
    type_("1111")
    press("Enter")
    expect(page.locator("#screen-register")).to_be_visible()
    login_keys = len(pressed)
    # start of the shift: the drawer, by keyboard (F10 → More, Tab to "Open drawer…"; $20 ×5 and $5 ×10)
    press("F10")
    expect(page.locator("#dlg-more")).to_be_visible()
    press("Tab", "Tab", "Tab", "Tab")
    expect(page.locator("#more-drawer")).to_be_focused()
    press("Enter")
    expect(page.locator("#dlg-drawer")).to_be_visible()
    expect(page.locator("#drawer-form [name=dB100]")).to_be_focused()
    press("Tab", "Tab")
    type_("5")
    press("Tab", "Tab")
    type_("10")
    press(*["Tab"] * 9)
    expect(page.locator("#drawer-form [name=witness]")).to_be_focused()
    type_("maria")
    press("Tab")
    type_("3333")
    expect(page.locator("#drawer-total")).to_have_text("$150.00")
    press("Enter")
    expect(page.locator("#drawer-pill")).to_have_text("Drawer open")
    drawer_keys = len(pressed) - login_keys
    shot("kbd-drawer-open")

    sale_start = len(pressed)
    scanner_types(page, store.customer("adult").id_scan)
    expect(page.locator("#decision")).to_have_class(re.compile(r"\ballowed\b"))
    press("/")
    expect(page.locator("#search")).to_be_focused()
    type_("blue dream 3.5")
    expect(page.locator("#results .result").first).to_contain_text("Blue Dream 3.5g")
    press("Enter")
    expect(page.locator("#cart-lines .line")).to_have_count(1)
    pre_roll = next(
        p
        for p in store.packages
        if p.product_id == "PRE-001" and p.status == "active" and p.tag not in store.scenarios.values()
    )
    scanner_types(page, pre_roll.tag)  # the scanner works whatever has focus (here: the search field)
    expect(page.locator("#cart-lines .line")).to_have_count(2)
    expect(page.locator("#search")).to_have_value("")
    shot("kbd-cart")
    press("F9")
    expect(page.locator("#dlg-tender")).to_be_visible()
    expect(page.locator("#tender-cash")).to_be_focused()
    type_("100")
    shot("kbd-tender")
    press("Enter")  # Enter is "Complete sale", never Cancel
    expect(page.locator("#dlg-receipt")).to_be_visible()
    expect(page.locator("#receipt-close")).to_be_focused()
    shot("kbd-receipt")
    press("Enter")
    expect(page.locator("#dlg-receipt")).to_be_hidden()
    expect(page.locator("#customer")).to_contain_text("Scan the customer's ID")
    expect(page.locator("#search")).to_be_focused()  # focus comes back to where the next sale starts
    sale_keys = len(pressed) - sale_start
    (output_dir / "keys.txt").write_text(
        f"login {login_keys}, drawer {drawer_keys}, sale {sale_keys}\n{' '.join(pressed)}\n"
    )
    assert login_keys <= 10, pressed
    assert drawer_keys <= 36, pressed[login_keys:sale_start]
    assert sale_keys <= 24, pressed[sale_start:]  # was ~490 key presses before issue 15

    # Esc cancels a dialog and focus returns to the search field; F2 also reaches the search
    press("F10")
    expect(page.locator("#dlg-more")).to_be_visible()
    press("Escape")
    expect(page.locator("#dlg-more")).to_be_hidden()
    page.keyboard.press("F2")
    expect(page.locator("#search")).to_be_focused()
    # a visible focus ring on a focused button
    page.keyboard.press("Tab")
    ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert ring not in ("", "none"), ring


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_queue_two_customers_first_served_second_waits(
    page: Page, hub: HubProcess, shot: Shots, output_dir: Path, size: str
) -> None:
    width, height = WIDTHS[size]
    page.set_viewport_size({"width": width, "height": height})
    store = demo_store()
    open_register(page, hub)
    pair(page)
    page.fill("#login-staff", "maria")
    page.locator("#login-pin").focus()
    page.keyboard.type("3333")
    page.keyboard.press("Enter")
    expect(page.locator("#screen-register")).to_be_visible()
    ensure_drawer_open_by_mouse(page, witness=("ana", "1111"))
    page.locator("#customer h2").click()
    scanner_types(page, store.customer("non_resident").id_scan)
    expect(page.locator("#decision")).to_have_class(re.compile(r"\ballowed\b"))
    at_counter = page.locator("#customer-label").inner_text()
    page.fill("#search", "Blue Dream 3.5")
    page.locator('#results [data-act="add-product"][data-product="FLW-001"]').click()
    expect(page.locator("#cart-lines .line")).to_have_count(1)
    # two more customers' IDs are scanned during the sale: each asks, Enter keeps them waiting
    page.locator("#customer h2").click()
    for role in ("medical", "adult"):
        scanner_types(page, store.customer(role).id_scan)
        expect(page.locator("#dlg-second-id")).to_be_visible()
        expect(page.locator("#second-id-queue")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#dlg-second-id")).to_be_hidden()
    expect(page.locator("#queue-list li")).to_have_count(2)
    expect(page.locator("#customer-label")).to_have_text(at_counter)  # the open sale was never touched
    expect(page.locator("#cart-lines .line")).to_have_count(1)
    first = page.locator("#queue-list li").nth(0)
    expect(first.locator(".badge")).to_have_text("Medical")
    expect(page.locator("#queue-list li").nth(1).locator(".badge")).to_have_text("Adult use")
    expect(first.locator(".wait")).to_have_text(re.compile(r"just now|waiting \d+ min"))
    expect(page.locator("#queue-list li").nth(1).locator(".left")).to_contain_text("Left today")
    layout_ok(page)
    shot("queue-two-waiting")
    assert_accessible(page, output_dir / "axe-queue.json")
    # finish the sale at the counter, then F4 takes the next: the first in line
    page.keyboard.press("F9")
    expect(page.locator("#dlg-tender")).to_be_visible()
    page.click('#tender-quick [data-cash="exact"]')
    page.click("#tender-submit")
    expect(page.locator("#dlg-receipt")).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("#dlg-receipt")).to_be_hidden()
    page.keyboard.press("F4")
    expect(page.locator("#queue-list li")).to_have_count(1)
    expect(page.locator("#decision")).to_have_class(re.compile(r"\ballowed\b"))
    # the second is still waiting, with what they may still buy today
    waiting = page.locator("#queue-list li").first
    expect(waiting.locator(".badge")).to_have_text("Adult use")
    expect(waiting.locator(".left")).to_contain_text(re.compile(r"Left today: .*\d"))
    shot("queue-first-served-second-waiting")


def test_buttons_for_returns_reprint_label_and_hand_over(
    page: Page, hub: HubProcess, shot: Shots, output_dir: Path
) -> None:
    """What the protocol offers has a button: a return by receipt (typed or scanned into the dialog),
    a reprint without prompt(), an exit label, the drawer hand-over."""
    page.set_viewport_size({"width": 1366, "height": 900})
    store = demo_store()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))  # a prompt() would land here
    open_register(page, hub)
    pair(page)
    page.fill("#login-staff", "maria")
    page.locator("#login-pin").focus()
    page.keyboard.type("3333")
    page.keyboard.press("Enter")
    expect(page.locator("#screen-register")).to_be_visible()
    ensure_drawer_open_by_mouse(page, witness=("ana", "1111"))
    page.locator("#customer h2").click()
    scanner_types(page, store.customer("adult").id_scan)
    expect(page.locator("#decision")).to_have_class(re.compile(r"\ballowed\b"))
    page.fill("#search", "Blue Dream 3.5")
    page.locator('#results [data-act="add-product"][data-product="FLW-001"]').click()
    expect(page.locator("#cart-lines .line")).to_have_count(1)
    page.keyboard.press("F9")
    page.click('#tender-quick [data-cash="exact"]')
    page.click("#tender-submit")
    expect(page.locator("#dlg-receipt")).to_be_visible()
    number = page.locator("#receipt-number").inner_text().lstrip("#")
    page.keyboard.press("Enter")
    expect(page.locator("#dlg-receipt")).to_be_hidden()

    # return: the receipt number arrives as a scanner types it (digits and Enter) into the dialog
    page.keyboard.press("F10")
    page.click("#more-return")
    expect(page.locator("#return-form [name=receipt]")).to_be_focused()
    page.keyboard.type(number + "\n")
    expect(page.locator("#return-lines tbody tr")).to_have_count(1)
    expect(page.locator("#return-lines")).to_contain_text("Blue Dream 3.5g")
    page.fill("#return-lines [data-return-line]", "1")
    page.fill("#return-form [name=manager]", "maria")
    page.fill("#return-form [name=pin]", "3333")
    page.fill("#return-form [name=reason]", "Defective product")
    shot("return-chosen")
    assert_accessible(page, output_dir / "axe-return.json")
    page.locator("#return-form [name=reason]").press("Enter")
    expect(page.locator("#dlg-return")).to_be_hidden()
    expect(page.locator("#message")).to_contain_text("Return done: refund $")
    shot("returned")

    # reprint: a dialog, never prompt(); the number of the last receipt is offered
    page.keyboard.press("F10")
    page.click("#more-reprint")
    expect(page.locator("#dlg-reprint")).to_be_visible()
    expect(page.locator("#reprint-form [name=receipt]")).to_have_value(number)
    shot("reprint-dialog")
    page.keyboard.press("Escape")
    expect(page.locator("#dlg-reprint")).to_be_hidden()

    # exit label and hand-over dialogs
    page.keyboard.press("F10")
    page.click("#more-label")
    expect(page.locator("#label-form [name=tag]")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("F10")
    page.click("#more-handover")
    expect(page.locator("#dlg-handover")).to_be_visible()
    page.fill('#handover-form [name="hB20"]', "10")
    expect(page.locator("#handover-total")).to_have_text("$200.00")
    page.fill("#handover-form [name=incoming]", "ana")
    page.fill("#handover-form [name=incoming_pin]", "1111")
    shot("hand-over")
    assert_accessible(page, output_dir / "axe-hand-over.json")
    page.click("#handover-form button[value=ok]")
    expect(page.locator("#dlg-handover")).to_be_hidden()
    expect(page.locator("#message")).to_contain_text("Drawer handed over to ana")
    assert not dialogs, dialogs
