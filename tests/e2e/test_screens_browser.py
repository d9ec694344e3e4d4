"""Several screens of one register (issue 11): a second tab of the same browser profile knows the device
token but not the staff session, so it opens on the login screen, never on the sale screen as whoever is
logged in on the first; after a PIN on it, both screens work."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import HubProcess, Shots, login, open_register, pair_and_login


def test_a_second_screen_opens_logged_out(
    page: Page, context: BrowserContext, hub: HubProcess, shot: Shots
) -> None:
    pair_and_login(page, hub)  # ana on the first screen
    second = context.new_page()
    errors: list[str] = []
    second.on("pageerror", lambda exc: errors.append(str(exc)))
    open_register(second, hub)
    expect(second.locator("#screen-login")).to_be_visible()
    expect(second.locator("#screen-register")).to_be_hidden()
    second.screenshot(path=str(shot.folder / "second-screen-logged-out.png"))
    # the first screen was not logged out by the second one's hello
    expect(page.locator("#screen-register")).to_be_visible()
    login(second, "ana", "1111")
    expect(second.locator("#screen-register")).to_be_visible()
    expect(page.locator("#screen-register")).to_be_visible()
    assert not errors, errors
    second.close()
