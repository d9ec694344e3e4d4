"""The back office's rough edges (issue 15): grouped tabs on one line, over/short wording, grams for bulk,
times in the store's zone to the minute, no "null" on empty pages, the $2 bill, a favicon, and no
serious or critical accessibility violations (axe-core) on any page. Screenshots in test-output/<test>/."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from hub.domain.demo_catalogue import build_demo_store
from tests.backoffice.test_backoffice_browser import (  # noqa: F401
    demo_hub,
    office_login,
    office_page,
    open_tab,
    pw,
    register_day,
)
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import HubProcess, Shots
from tests.e2e.test_register_browser import store_today

PAGES = ("readiness", "drawers", "eod", "flags", "form8300", "promotions", "counts", "receiving", "reconcile",
         "orders", "catalogue", "state", "deadletter", "staff", "customers", "devices", "audit", "incidents")  # fmt: skip
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def test_every_page_reads_well_and_passes_axe(
    demo_hub: HubProcess,  # noqa: F811
    office_page: Page,  # noqa: F811
    output_dir: Path,
) -> None:
    page = office_page
    shot = Shots(page, output_dir)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    register_day(demo_hub)
    office_login(page, demo_hub, "maria", "3333")
    expect(page.locator("#readiness")).to_be_visible()
    # five groups on one line, and only the open group's pages below them
    tops = page.evaluate(
        "() => Array.from(document.querySelectorAll('#tab-groups button')).map(b => b.getBoundingClientRect().top)"
    )
    assert len(tops) == 5 and len(set(tops)) == 1, tops
    assert page.locator("#tab-groups button").all_inner_texts() == [
        "Money",
        "Inventory",
        "State",
        "Staff & devices",
        "Audit",
    ]
    for tab in PAGES:
        open_tab(page, tab)
        expect(page.locator(f'#page [data-page="{tab}"]')).to_be_attached()
        page.wait_for_timeout(300)  # pages that refresh themselves (state) settle
        # only the open group's pages are offered (at most five) below the groups
        group = page.locator(f'#tabs [data-tab="{tab}"]').get_attribute("data-group")
        visible = page.locator("#tabs button:visible")
        assert visible.count() <= 5, (tab, visible.count())
        assert visible.count() == page.locator(f'#tabs button[data-group="{group}"]:visible').count()
        text = page.locator("#page").inner_text()
        assert "null" not in text and "undefined" not in text and "NaN" not in text, (tab, text[:400])
        # times are the store's, to the minute: no raw ISO stamps, no seconds
        assert not ISO.search(text), (tab, ISO.findall(text)[:3])
        assert_accessible(page, output_dir / f"axe-{tab}.json")
        shot(tab)
    assert not missing, f"404s while loading the back office: {missing}"  # the favicon among them before


def test_empty_z_report_drawer_wording_and_grams(
    demo_hub: HubProcess,  # noqa: F811
    office_page: Page,  # noqa: F811
    output_dir: Path,
) -> None:
    page = office_page
    shot = Shots(page, output_dir)
    office_login(page, demo_hub, "maria", "3333")
    expect(page.locator("#readiness")).to_be_visible()
    # a day without a sale: nothing reads "null" or "nullnull"
    open_tab(page, "eod")
    expect(page.locator("#eod-figures")).to_be_visible()
    assert "null" not in page.locator("#page").inner_text()
    expect(page.locator("#eod-figures")).to_contain_text("$0.00 (balanced)")
    shot("empty-z-report")
    # the drawer forms count $2 bills too
    open_tab(page, "drawers")
    expect(page.locator('.open-form input[name="B2"]').first).to_be_visible()
    # a spot count of a bulk package is entered and shown in grams, with decimals
    store = build_demo_store(store_today(), home_jurisdiction="CA")
    bulk = next(
        pk
        for pk in store.packages
        if pk.product_id in {p.id for p in store.products if p.sold_by == "weight"} and pk.status == "active"
    )
    open_tab(page, "counts")
    page.fill('#count-start textarea[name="tags"]', bulk.tag)
    page.click('#count-start button[name="spot"]')
    card = page.locator(".card.count").first
    expect(card.locator('input[name="tag"]')).to_be_visible()
    card.locator('input[name="tag"]').fill(bulk.tag)
    card.locator('input[name="counted"]').fill("12.345")
    card.locator('button[type="submit"]').click()
    expect(page.locator(".card.count").first).to_contain_text(f"{bulk.tag} ✓ 12.345 g")
    shot("bulk-counted-in-grams")
