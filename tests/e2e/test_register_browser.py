"""The browser register in a real headless Chromium against a real hub (``storehub demo`` subprocess).

Screenshots of every step land in test-output/<test name>/. The sale tests follow the register snapshot
and sale commands of issue 4 (``hub/sale/protocol.py``).
"""

from __future__ import annotations

import re
import signal
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from hub.domain.aamva import parse_licence
from hub.domain.demo_catalogue import build_demo_store
from hub.domain.scan_classify import classify
from tests.e2e.conftest import (
    CuttableProxy,
    HubProcess,
    Shots,
    login,
    open_register,
    pair,
    pair_and_login,
    wedge_scan,
    wedge_type,
)

DEMO_JURISDICTION = "CA"  # hub/demo.py DEMO_TOML


def store_today() -> date:
    return datetime.now(ZoneInfo("America/Los_Angeles")).date()


def demo_store():  # type: ignore[no-untyped-def]
    return build_demo_store(store_today(), home_jurisdiction=DEMO_JURISDICTION)


def record_scans(page: Page) -> None:
    """Keep `scan` commands in the page instead of sending them (to look at exactly what a wedge gave)."""
    page.evaluate(
        """() => {
        const live = window.storehub.live;
        const send = live.request.bind(live);
        window.__scans = [];
        live.request = (type, fields, opts) => {
            if (type === 'scan') { window.__scans.push(fields); return Promise.resolve({}); }
            return send(type, fields, opts);
        };
    }"""
    )


# ---------------------------------------------------------------- pairing, login, connection


def test_pair_login_and_see_the_register(page: Page, hub: HubProcess, shot: Shots) -> None:
    open_register(page, hub)
    shot("pairing-screen")
    pair(page)
    expect(page.locator("#screen-login")).to_be_visible()
    expect(page.locator("#register-name")).to_contain_text("Register 1")
    shot("login-screen")
    login(page, "ana", "1111")
    expect(page.locator("#screen-register")).to_be_visible()
    expect(page.locator("#staff-name")).to_contain_text("Ana Budtender")
    expect(page.locator("#customer")).to_contain_text("Scan the customer's ID")
    shot("register")
    # the pairing survives a reload (device token in localStorage) and so does the staff session
    page.reload()
    expect(page.locator("#screen-register")).to_be_visible()
    expect(page.locator("#staff-name")).to_contain_text("Ana Budtender")
    shot("after-reload")
    page.click("#btn-logout")
    expect(page.locator("#screen-login")).to_be_visible()
    shot("logged-out")


def test_wrong_pin_shows_the_hubs_message(page: Page, hub: HubProcess, shot: Shots) -> None:
    open_register(page, hub)
    pair(page, "99999999")
    expect(page.locator("#pair-error")).to_contain_text("pairing code is not valid")
    shot("bad-pairing-code")
    pair(page)
    login(page, "ana", "9999")
    expect(page.locator("#login-error")).to_contain_text("Staff ID or PIN is not right")
    expect(page.locator("#screen-login")).to_be_visible()
    expect(page.locator("#login-pin")).to_have_value("")
    shot("wrong-pin")
    login(page, "ana", "1111")
    expect(page.locator("#screen-register")).to_be_visible()
    shot("right-pin")


def test_reconnecting_shows_and_clears_by_itself(
    page: Page, hub: HubProcess, ws_proxy: CuttableProxy, shot: Shots
) -> None:
    pair_and_login(page, hub)
    shot("connected")
    ws_proxy.cut(2.0)
    expect(page.locator("#reconnecting")).to_be_visible()
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    # a request made while the hub is unreachable waits, and goes out once, with its id, on reconnect
    page.evaluate(
        """() => { window.__inc = null;
        window.storehub.live.request('report_incident',
            {category: 'network', description: 'cable pulled (browser test)'}, {id: 'e2e-incident-1'})
          .then(r => { window.__inc = r; }, e => { window.__inc = {error: e.message}; }); }"""
    )
    shot("reconnecting")
    expect(page.locator("#reconnecting")).to_be_hidden(timeout=12_000)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    # the staff session was resumed with the session token: no new login
    expect(page.locator("#screen-register")).to_be_visible()
    expect(page.locator("#staff-name")).to_contain_text("Ana Budtender")
    page.wait_for_function("() => window.__inc !== null", timeout=8_000)
    first = page.evaluate("() => window.__inc")
    assert "incident" in first, first
    # the same id again is answered from the hub's stored reply, not applied a second time
    again = page.evaluate(
        """() => window.storehub.live.request('report_incident',
            {category: 'network', description: 'cable pulled (browser test)'}, {id: 'e2e-incident-1'})"""
    )
    assert again == first
    shot("reconnected")


def test_hub_restart_reconnects_by_itself(page: Page, hub: HubProcess, shot: Shots) -> None:
    pair_and_login(page, hub)
    shot("before-restart")
    hub.stop(signal.SIGKILL)  # a power cut, not a tidy shutdown
    expect(page.locator("#reconnecting")).to_be_visible()
    shot("hub-down")
    time.sleep(0.5)
    hub.start()
    expect(page.locator("#reconnecting")).to_be_hidden(timeout=12_000)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    # the pairing is durable; staff sessions live in the hub's memory, so the staff logs in again
    expect(page.locator("#screen-login")).to_be_visible()
    shot("back-after-restart")
    login(page, "ana", "1111")
    expect(page.locator("#screen-register")).to_be_visible()
    shot("logged-in-again")


# ---------------------------------------------------------------- keyboard-wedge scanning


def test_wedge_scan_anywhere_keeps_the_licence_whole(page: Page, hub: HubProcess, shot: Shots) -> None:
    pair_and_login(page, hub)
    record_scans(page)
    adult = demo_store().customer("adult")

    # a licence scanned while the product search has focus and half a word in it
    search = page.locator("#search")
    search.click()
    search.press_sequentially("blu", delay=120)  # a person typing
    page.wait_for_timeout(200)
    page.keyboard.type(adult.id_scan + "\n")
    page.wait_for_function("() => window.__scans.length === 1", timeout=5_000)
    shot("licence-scanned-over-search")
    scans = page.evaluate("() => window.__scans")
    assert scans[0]["source"] == "wedge"
    data = scans[0]["data"]
    assert data.startswith("@\n\x1e\rANSI ")  # the fixed AAMVA header restored after the wedge lost RS
    cls = classify(data)
    assert cls.kind == "aamva" and cls.valid, cls
    assert parse_licence(data) == parse_licence(adult.id_scan)
    expect(search).to_have_value("blu")  # the person's text is intact, the scan is not in it

    # a package tag scanned while a button has focus: Enter must not press the button
    tag = next(p.tag for p in demo_store().packages if p.status == "active")
    page.locator("#btn-logout").focus()
    page.keyboard.type(tag + "\n")
    page.wait_for_function("() => window.__scans.length === 2", timeout=5_000)
    assert page.evaluate("() => window.__scans[1].data") == tag
    expect(page.locator("#screen-register")).to_be_visible()  # still logged in

    # slow typing is never a scan
    search.fill("")
    search.press_sequentially("1A4000000000", delay=90)
    search.press("Enter")
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__scans.length") == 2
    shot("after-scans")


def test_wedge_scan_survives_a_busy_page_and_a_stalling_scanner(page: Page, hub: HubProcess) -> None:
    pair_and_login(page, hub)
    record_scans(page)
    adult = demo_store().customer("adult")
    tag = next(p.tag for p in demo_store().packages if p.status == "active")
    page.locator("#customer h2").click()

    # a busy page gets to each key 60 ms after the last (more than a scan's start may take), but the
    # scanner made them 4 ms apart: the keys' own times count
    wedge_type(page, tag + "\n", pause_s=0.06)
    page.wait_for_function("() => window.__scans.length === 1", timeout=5_000)

    # a licence whose first keys come 150 ms apart (a scanner waking up) and that stalls for a second in
    # the middle is still one scan: "@" and a line break say a licence has begun, its header says how long
    half = len(adult.id_scan) // 2
    stamp = wedge_type(page, adult.id_scan[:half], gaps_ms=[150.0] * 4)
    time.sleep(1.0)
    wedge_type(page, adult.id_scan[half:] + "\n", after=(stamp, 1000.0))
    page.wait_for_function("() => window.__scans.length >= 2", timeout=5_000)
    page.wait_for_timeout(500)  # a licence cut in two would show as a third scan by now
    scans = page.evaluate("() => window.__scans")
    assert [s["data"] for s in scans][:1] == [tag] and len(scans) == 2, scans
    data = scans[1]["data"]
    assert data.startswith("@\n\x1e\rANSI ")
    assert classify(data).valid
    assert parse_licence(data) == parse_licence(adult.id_scan)


# ---------------------------------------------------------------- the sale (needs the server side of issue 4)


def gauge_used(page: Page) -> dict[str, float]:
    return page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll('#allotment .gauge'))
            .map(g => [g.dataset.bucket, Number(g.dataset.used)]))"""
    )


def add_from_search(page: Page, query: str, product_id: str) -> None:
    page.fill("#search", query)
    add = page.locator(f'#results [data-act="add-product"][data-product="{product_id}"]')
    expect(add).to_be_visible()
    add.click()


def ensure_drawer_open(page: Page) -> None:
    button = page.locator("#btn-open-drawer")
    if button.count() == 0 or not button.is_visible():
        return
    button.click()
    page.fill("#drawer-form [name=dB20]", "5")
    page.fill("#drawer-form [name=dB5]", "10")
    page.fill("#drawer-form [name=dC25]", "20")
    page.fill("#drawer-form [name=witness]", "maria")  # a manager witnesses the budtender's count
    page.fill("#drawer-form [name=witness_pin]", "3333")
    page.click("#drawer-form button[value=ok]")
    expect(page.locator("#drawer-closed")).to_have_count(0)
    expect(page.locator("#dlg-drawer")).to_be_hidden()


def test_cash_sale_checked_in_by_wedge_scan(page: Page, hub: HubProcess, shot: Shots) -> None:
    store = demo_store()
    pair_and_login(page, hub)
    shot("logged-in")
    wedge_scan(page, store.customer("adult").id_scan)
    expect(page.locator("#decision")).to_have_class(re.compile(r"\ballowed\b"))
    expect(page.locator("#allotment .gauge").first).to_be_visible()
    shot("checked-in")
    before = gauge_used(page)

    add_from_search(page, "Blue Dream 3.5", "FLW-001")
    expect(page.locator("#cart-lines .line")).to_have_count(1)
    page.wait_for_function(
        "(b) => Array.from(document.querySelectorAll('#allotment .gauge'))"
        ".some(g => Number(g.dataset.used) > (b[g.dataset.bucket] ?? 0))",
        arg=before,
    )
    shot("flower-added-gauge-moved")

    # a package tag by wedge scan: the line shows that very tag
    pre_roll = next(
        p
        for p in store.packages
        if p.product_id == "PRE-001" and p.status == "active" and p.tag not in store.scenarios.values()
    )
    wedge_scan(page, pre_roll.tag)
    expect(page.locator(f'#cart-lines .line[data-tag="{pre_roll.tag}"]')).to_be_visible()
    expect(page.locator("#cart-lines .line")).to_have_count(2)
    after = gauge_used(page)
    assert any(after[b] > before.get(b, 0) for b in after), (before, after)
    shot("package-scanned")

    ensure_drawer_open(page)
    total = page.locator("#cart-total").inner_text()
    page.click("#btn-pay")
    expect(page.locator("#dlg-tender")).to_be_visible()
    expect(page.locator("#tender-total")).to_have_text(total)
    page.click('#tender-quick [data-cash="100"]')
    expect(page.locator("#tender-change")).not_to_have_text("$0.00")
    shot("tender-cash")
    page.click("#tender-submit")

    expect(page.locator("#dlg-receipt")).to_be_visible()
    expect(page.locator("#receipt-number")).to_contain_text("#")
    receipt = page.frame_locator("#receipt-frame")
    expect(receipt.locator("body")).to_contain_text("Blue Dream")
    expect(receipt.locator("body")).to_contain_text(pre_roll.tag)
    change = page.locator("#receipt-change").inner_text()
    assert change != "$0.00", change
    shot("receipt")
    page.click("#receipt-close")
    expect(page.locator("#dlg-receipt")).to_be_hidden()
    shot("after-sale")


def test_over_limit_item_shows_the_refusal(page: Page, hub: HubProcess, shot: Shots) -> None:
    # CA adult use: 8 g of concentrate per day (4 CCR 15409); the ninth 1 g shatter is one too many
    pair_and_login(page, hub)
    wedge_scan(page, demo_store().customer("adult").id_scan)
    expect(page.locator("#decision")).to_have_class(re.compile(r"\ballowed\b"))
    add_from_search(page, "Sour Diesel Shatter", "CON-002")
    expect(page.locator("#cart-lines .line")).to_have_count(1)
    shot("one-gram-concentrate")
    refusal = page.locator("#message.error #message-text, #notice.error, #limit-problems li").filter(
        visible=True
    )
    plus = page.locator('#cart-lines .line [data-act="qty-plus"]').first
    for _ in range(10):
        if refusal.count():
            break
        plus.click()
        page.wait_for_timeout(250)
    expect(refusal.first).to_be_visible()
    # the refusal names the rule: concentrated cannabis, 8 g
    expect(refusal.first).to_contain_text(re.compile(r"concentrat.*\b8 g", re.I))
    shot("refused-over-limit")
    # a refused cart cannot be paid: either the line was refused, or the cart is flagged over the limit
    if page.locator("#limit-problems li").count():
        expect(page.locator("#allotment .gauge.over").first).to_be_visible()
        expect(page.locator("#btn-pay")).to_be_disabled()
    else:
        expect(page.locator("#cart-lines .line .qty")).to_have_text(re.compile(r"^8\b"))


def test_expired_id_is_refused(page: Page, hub: HubProcess, shot: Shots) -> None:
    pair_and_login(page, hub)
    expired = demo_store().customer("expired_id")
    wedge_scan(page, expired.id_scan)
    refusal = page.locator("#message.error #message-text, #notice.error, #decision.refused").filter(
        visible=True
    )
    expect(refusal.first).to_be_visible()
    expect(refusal.first).to_contain_text(re.compile("expire", re.I))
    expect(page.locator("#decision.allowed")).to_have_count(0)
    expect(page.locator("#btn-pay")).to_be_disabled()
    shot("expired-id-refused")
