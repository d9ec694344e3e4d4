"""The picker page on a handheld-sized Chromium (390×844): pair, log in, claim an order from the queue, pick
by keyboard-wedge scans, weigh the bulk line on the station's scale, short a line (the customer's preference
substitutes it), pick the substitute, ready. Screenshots of each step in test-output/<test>/."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lmdb
from playwright.sync_api import Page, expect

from hub.domain import signing
from hub.domain.catalog import Package
from hub.orders.api import DEMO_CHANNEL, DEMO_SECRET
from hub.store.env import decode
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import HubProcess, Shots, wedge_type

HANDHELD = {"width": 390, "height": 844}


def channel_get(hub: HubProcess, path: str) -> Any:
    req = urllib.request.Request(
        hub.url + path, headers=signing.signed_headers(DEMO_CHANNEL, DEMO_SECRET, int(time.time()), b"")
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def tags_of(data: Path, product_id: str, skip: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    env = lmdb.open(str(data), readonly=True, max_dbs=64, lock=True)
    try:
        db = env.open_db(b"packages", create=False)
        with env.begin(db=db) as txn:
            pkgs = [decode(v, Package) for _, v in txn.cursor()]
    finally:
        env.close()
    today = datetime.now(UTC).date()
    return [
        p.tag
        for p in pkgs
        if p.product_id == product_id
        and p.status == "active"
        and p.lab_testing in ("passed", "retest_passed", "not_required")
        and p.quantity >= (5000 if p.product_id.startswith("FLW-B") else 2)
        and (p.expires_on is None or p.expires_on > today)
        and p.tag not in skip
    ]


def wedge(page: Page, data: str) -> None:
    page.locator("#pick-title").click()  # nothing editable has the focus, as on the shop floor
    wedge_type(page, data + "\n")  # keys stamped a scanner's few ms apart, however busy the machine


def test_claim_scan_weigh_short_ready_on_a_handheld(hub: HubProcess, page: Page, shot: Shots) -> None:
    page.set_viewport_size(HANDHELD)
    page.goto(hub.url + "/picker/")
    expect(page.locator("#screen-pair")).to_be_visible()
    page.fill("#pair-code", "44444444")
    page.click("#pair-form button[type=submit]")
    expect(page.locator("#screen-login")).to_be_visible()
    page.fill("#login-staff", "tom")
    page.fill("#login-pin", "2222")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#screen-queue")).to_be_visible()
    expect(page.locator("#queue > li")).to_have_count(3)
    # touch targets: every button on the queue at least 48 px high, nothing wider than the screen
    for box in page.locator("#queue button").evaluate_all("els => els.map(e => e.getBoundingClientRect())"):
        assert box["height"] >= 48 and box["right"] <= HANDHELD["width"]
    shot("queue")
    assert_accessible(page, shot.folder / "axe-queue.json")
    order = channel_get(hub, "/api/v1/orders/W000001")
    lines = {row["category"]: row for row in order["pick_list"]}
    page.click('[data-claim="W000001"]')
    expect(page.locator("#screen-pick")).to_be_visible()
    expect(page.locator("#pick-title")).to_have_text("Order W000001")
    shot("claimed")
    assert_accessible(page, shot.folder / "axe-claimed.json")

    preroll = lines["pre-roll"]
    wedge(page, tags_of(hub.data, preroll["product_id"])[0])
    expect(page.locator("#scan-status")).to_have_class("scan-status ok")
    expect(page.locator(f'[data-line="{preroll["line"]}"]')).to_have_class("item complete")
    # a tag of a product that is not in the order: refused with the reason
    wedge(page, tags_of(hub.data, "TOP-001")[0])
    expect(page.locator("#scan-status")).to_contain_text("not in this order")
    expect(page.locator("#scan-status")).to_have_class("scan-status error")
    shot("scanned")

    flower = lines["flower"]
    bulk_tag = tags_of(hub.data, flower["product_id"])[0]
    page.locator("#demo summary").click()
    page.fill("#demo-weight", "3.49")
    page.click("#demo-motion")
    wedge(page, bulk_tag)
    expect(page.locator("#scan-status")).to_contain_text("still moving")
    page.click("#demo-stable")
    page.locator("#demo summary").click()  # fold the demo panel away again
    page.click(f'[data-weigh="{flower["line"]}"]')
    expect(page.locator(f'[data-line="{flower["line"]}"]')).to_have_class("item complete")
    expect(page.locator(f'[data-line="{flower["line"]}"]')).to_contain_text("3.49 g")
    shot("weighed")

    edible = lines["edible"]
    page.click(f'[data-short="{edible["line"]}"]')
    expect(page.locator(f'[data-line="{edible["line"]}"]')).to_have_class("item short")
    expect(page.locator("#message")).to_contain_text("customer's preference")
    after = channel_get(hub, "/api/v1/orders/W000001")
    sub = next(r for r in after["pick_list"] if r["substitute_for"] == edible["line"])
    shot("short-substituted")
    wedge(page, tags_of(hub.data, sub["product_id"])[0])
    expect(page.locator(f'[data-line="{sub["line"]}"]')).to_have_class("item complete")
    page.click("#btn-ready")
    expect(page.locator("#message")).to_contain_text("is ready")
    expect(page.locator("#screen-queue")).to_be_visible()
    expect(page.locator('[data-order="W000001"] .badge.ready')).to_be_visible()
    shot("ready")
    assert_accessible(page, shot.folder / "axe-ready.json")
    assert channel_get(hub, "/api/v1/orders/W000001")["state"] == "ready"
