"""A dashboard left open when its session ends elsewhere goes to the login
page as a whole window; the balance badge never shows the login form."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser

# Reports any form that appears inside the header's balance slot.
WATCH_BADGE = """
() => {
  const slot = document.getElementById("header-balance-slot");
  const report = () => {
    if (slot.querySelector("form, input")) console.log("badge-got-a-form");
  };
  new MutationObserver(report).observe(slot, {childList: true, subtree: true});
  report();
}
"""


def test_an_ended_session_sends_the_open_page_to_login(
    page: Any, browser: Any, live_server: Any
) -> None:
    Billing(live_server.app).user("alice@example.com", 5_000_000)
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(msg.text))
    sign_in(page, "alice@example.com")
    page.goto("/usage?model=gpt-4o-mini")
    expect(page.locator("#balance-badge")).to_have_text("5.00 credits")
    page.evaluate(WATCH_BADGE)

    # The same account signs out on another device: every session ends.
    other = browser.new_context(base_url=live_server.url)
    try:
        laptop = other.new_page()
        sign_in(laptop, "alice@example.com")
        laptop.get_by_role("button", name="Sign out").click()
        laptop.wait_for_url("**/auth/login")
    finally:
        other.close()

    # The next balance poll (every second here) finds the session over.
    page.wait_for_url("**/auth/login?next=%2Fusage%3Fmodel%3Dgpt-4o-mini", timeout=10_000)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Please log in to access this page.")).to_be_visible()
    assert "badge-got-a-form" not in messages

    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("main").get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/usage?model=gpt-4o-mini")  # back where the user was
