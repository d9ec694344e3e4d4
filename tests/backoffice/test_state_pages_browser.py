"""The back office's state pages in Chromium against a demo hub that runs the bundled state sandbox:
receiving the demo manifest (one line short, one missing) by wedge scans and reading the report; running a
reconciliation, finding a discrepancy planted through the sandbox's admin API and turning it into an
adjustment that reaches the sandbox; the state channel's status. Screenshots under test-output/<test>/.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from playwright.sync_api import Page, expect

from sandbox import demo as sbx
from tests.backoffice.test_backoffice_browser import (  # noqa: F401
    office_login,
    office_page,
    open_tab,
    pw,
    register_day,
)
from tests.e2e.conftest import HubProcess, Shots, wedge_type


class SandboxHub(HubProcess):
    """``storehub demo`` with its in-process state sandbox (the e2e HubProcess starts it without)."""

    sandbox_url = ""

    def _start(self, timeout: float) -> None:
        real = subprocess.Popen
        # the log is appended to across runs: read only what this start writes
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0

        def popen(args: list[str], **kw: Any) -> Any:
            return real([a for a in args if a != "--no-sandbox"], **kw)

        with mock.patch.object(subprocess, "Popen", popen):
            super()._start(timeout)
        # the demo announces the sandbox's URL once it is up
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                found = re.search(r"State-system sandbox: (\S+)", log.read().decode(errors="replace"))
            if found:
                self.sandbox_url = found.group(1)
                return
            time.sleep(0.1)
        raise RuntimeError("the demo did not announce its state sandbox")

    def sandbox(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.sandbox_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


@pytest.fixture
def sandbox_hub(tmp_path: Path, output_dir: Path) -> Iterator[SandboxHub]:
    h = SandboxHub(tmp_path / "data", output_dir / "hub.log")
    h.start(timeout=30)
    try:
        yield h
    finally:
        h.stop()


def wedge(page: Page, data: str) -> None:
    """A keyboard-wedge scan: every character as a fast key, then Enter, with nothing editable focused."""
    page.locator("#page h1").first.click()
    wedge_type(page, data + "\n")  # keys stamped a scanner's few ms apart, however busy the machine


@pytest.mark.parametrize(
    ("staff", "pin"),
    [
        pytest.param("tom", "2222", id="technician"),
        pytest.param("maria", "3333", id="manager"),
    ],
)
def test_receiving_the_demo_manifest_short_and_missing(
    sandbox_hub: SandboxHub,
    office_page: Page,  # noqa: F811
    output_dir: Path,
    staff: str,
    pin: str,
) -> None:
    page = office_page
    shot = Shots(page, output_dir)
    a, b, c = (label for label, *_ in sbx.INCOMING_PACKAGES)
    office_login(page, sandbox_hub, staff, pin)
    expect(page.locator("#screen-office")).to_be_visible()
    expect(page.locator('#tab-groups [data-group="inventory"]')).to_be_visible()
    if staff == "tom":  # a technician sees counts and receiving, nothing of the manager's pages
        expect(page.locator('#tabs [data-tab="receiving"]')).to_be_visible()
        expect(page.locator('#tabs [data-tab="reconcile"]')).to_be_hidden()
        expect(page.locator("#tab-groups button:visible")).to_have_text(["Inventory"])
    open_tab(page, "receiving")
    row = page.locator(f'#manifests tr[data-manifest="{sbx.INCOMING_MANIFEST_NUMBER}"]')
    expect(row).to_contain_text("to receive")
    shot("manifests")
    row.get_by_role("link", name="Receive").click()

    lines = page.locator("#receive-lines")
    expect(lines).to_be_visible()
    expect(page.locator("#receive-progress")).to_contain_text("0 of 3")
    # the scanner reads a and b; c never came off the van
    wedge(page, a)
    expect(lines.locator(f'tr[data-label="{a}"]')).to_have_attribute("data-status", "received")
    wedge(page, b)
    line_b = lines.locator(f'tr[data-label="{b}"]')
    expect(line_b).to_have_attribute("data-status", "received")
    wedge(page, "1A4FF0300000387000009999")
    expect(page.locator("#message")).to_contain_text("is not on manifest")
    # b weighed light: short, 400 g of 453.592 g; the bulk line is sold as a product by weight
    line_b.locator('select[name="status"]').select_option("short")
    line_b.locator('input[name="qty"]').fill("400")
    line_b.locator('input[name="reason"]').fill("bag weighed light")
    line_b.locator('select[name="product"]').select_option(index=1)
    expect(lines.locator(f'tr[data-label="{a}"] select[name="product"]')).to_have_value("FLW-001")
    expect(page.locator("#receive-progress")).to_contain_text("2 of 3 lines checked")
    shot("scanned-b-short")
    page.click("#receive-submit")

    report = page.locator("#receiving-report")
    expect(report).to_be_visible()
    expect(report.locator(f'tr[data-label="{a}"]')).to_have_attribute("data-status", "received")
    expect(report.locator(f'tr[data-label="{b}"]')).to_have_attribute("data-status", "short")
    expect(report.locator(f'tr[data-label="{b}"]')).to_contain_text("400 g")
    expect(report.locator(f'tr[data-label="{c}"]')).to_have_attribute("data-status", "missing")
    expect(page.locator("#discrepancy-count")).to_have_text("Discrepancies: 2")
    steps = page.locator("#state-steps li")
    expect(steps.first).to_contain_text(
        f"In Metrc: Transfers > Incoming > manifest {sbx.INCOMING_MANIFEST_NUMBER}"
    )
    expect(page.locator("#state-steps")).to_contain_text(f"{c}: reject as not delivered")
    shot("report")
    page.emulate_media(media="print")
    shot("report-print")
    page.emulate_media(media="screen")


def test_manager_reconciles_and_adjusts_a_planted_discrepancy(
    sandbox_hub: SandboxHub,
    office_page: Page,  # noqa: F811
    output_dir: Path,
) -> None:
    page = office_page
    shot = Shots(page, output_dir)
    state = sandbox_hub.sandbox("GET", "/_sandbox/state")
    # a unit package of the store that the demo planted in the sandbox facility
    row = next(
        p
        for p in state["packages"]
        if p["license"] == sbx.METRC_LICENSE
        and p["unit"] == "Each"
        and p["quantity"] >= 5
        and p["label"] not in {label for label, *_ in sbx.METRC_PACKAGES}
    )
    label, here = row["label"], row["quantity"]
    # plant: the state believes two more units are on the shelf than the store has
    sandbox_hub.sandbox("POST", "/_sandbox/packages", [{**row, "quantity": here + 2}])

    office_login(page, sandbox_hub, "maria", "3333")
    expect(page.locator("#screen-office")).to_be_visible()
    open_tab(page, "reconcile")
    expect(page.locator("#reconcile-run")).to_be_enabled()  # (the hub's schedule may have run one already)
    page.click("#reconcile-run")
    found = page.locator(f'#discrepancies tr[data-label="{label}"]')
    expect(found).to_have_attribute("data-kind", "quantity")
    expect(found.locator("td.local")).to_have_text(f"{here:g}")
    expect(found.locator("td.state")).to_have_text(f"{here + 2:g}")
    expect(page.locator("#reconcile-age")).to_contain_text(
        re.compile(r"Last reconciled (just now|\d+ s ago)")
    )
    expect(page.locator("#reconciliation")).to_contain_text("manual by maria")
    expect(page.locator("#reconciliations tbody tr").first).to_contain_text("manual")
    shot("discrepancy")

    found.locator('select[name="reason"]').select_option("Theft")
    found.locator('input[name="note"]').fill("two units unaccounted for at count")
    shot("adjustment-filled")
    found.locator('button[type="submit"]').click()
    expect(found.locator(".adjusted")).to_contain_text("adjusted (Theft) → outbox #")
    shot("adjusted")

    # the outbox sends it: the sandbox records the adjustment and the package is back to the store's figure
    deadline = time.monotonic() + 10
    made: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not made:
        made = [
            a for a in sandbox_hub.sandbox("GET", "/_sandbox/state")["adjustments"] if a["label"] == label
        ]
        time.sleep(0.2)
    assert [(m["quantity"], m["unit"], m["reason"]) for m in made] == [(-2.0, "Each", "Theft")]
    after = sandbox_hub.sandbox("GET", "/_sandbox/state")["packages"]
    assert next(p for p in after if p["label"] == label)["quantity"] == here

    # the state channel's status: nothing waiting, nothing dead, not paused
    open_tab(page, "state")
    expect(page.locator('#state-status tr[data-key="backlog"] td')).to_have_text("0")
    expect(page.locator('#state-status tr[data-key="dead"] td')).to_have_text("0")
    expect(page.locator('#state-status tr[data-key="paused"] td')).to_have_text("not paused")
    expect(page.locator('#state-status tr[data-key="last-sent"] td')).to_contain_text("ago")
    shot("state-status")
    open_tab(page, "deadletter")
    expect(page.locator("#dead-letters-none")).to_be_visible()


def test_manager_retries_a_dead_letter_after_the_fix(
    sandbox_hub: SandboxHub,
    office_page: Page,  # noqa: F811
    output_dir: Path,
) -> None:
    page = office_page
    shot = Shots(page, output_dir)
    seeded = {label for label, *_ in sbx.METRC_PACKAGES}
    # the state thinks every Blue Dream 3.5g package of the store is finished: the sale's receipt is refused
    blue = [
        p
        for p in sandbox_hub.sandbox("GET", "/_sandbox/state")["packages"]
        if p["license"] == sbx.METRC_LICENSE
        and p["item_name"] == "Blue Dream 3.5g"
        and p["label"] not in seeded
    ]
    assert blue
    sandbox_hub.sandbox("POST", "/_sandbox/packages", [{**p, "finished": True} for p in blue])
    register_day(sandbox_hub)  # R1 sells one FLW-001 (Blue Dream 3.5g) for cash

    office_login(page, sandbox_hub, "maria", "3333")
    expect(page.locator("#screen-office")).to_be_visible()
    open_tab(page, "state")  # the status page refreshes itself every few seconds
    expect(page.locator('#state-status tr[data-key="dead"] td')).to_have_text("1", timeout=15_000)
    shot("status-one-dead")
    page.get_by_role("link", name=re.compile("dead letter")).click()
    entry = page.locator("#dead-letters tbody tr")
    expect(entry).to_have_count(1)
    expect(entry.locator(".state-message")).not_to_have_text("—")
    shot("dead-letter")

    # the fix: the packages are active at the state after all; then retry
    sandbox_hub.sandbox("POST", "/_sandbox/packages", [{**p, "finished": False} for p in blue])
    entry.locator("button.retry").click()
    expect(page.locator("#message")).to_contain_text("will be sent again")
    deadline = time.monotonic() + 10
    receipts: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not receipts:
        receipts = sandbox_hub.sandbox("GET", "/_sandbox/state")["receipts"]
        time.sleep(0.2)
    assert len(receipts) == 1
    assert {ln["package_label"] for ln in receipts[0]["lines"]} <= {p["label"] for p in blue}
    open_tab(page, "deadletter")
    expect(page.locator("#dead-letters-none")).to_be_visible()
    shot("after-retry")
    # times are the store's, to the minute: the channel's last send and readiness (no raw ISO, no seconds)
    open_tab(page, "state")
    last = page.locator('#state-status tr[data-key="last-sent"] td').first
    expect(last).not_to_have_text("nothing sent yet", timeout=10_000)
    for text in (last.inner_text(), page.locator("#page").inner_text()):
        assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", text), text
        assert not re.search(r"\d{1,2}:\d{2}:\d{2}", text), text
    open_tab(page, "readiness")
    text = page.locator("#readiness").inner_text()
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", text) and not re.search(r"\d:\d{2}:\d{2}", text), (
        text
    )
    shot("times-to-the-minute")
