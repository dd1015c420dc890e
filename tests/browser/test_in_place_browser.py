"""Usage filters, "Older" paging and the admin user search swap the page's
main area in place and push the URL; the same links work as plain pages."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser
PER_PAGE = 50  # core.usage.history_page's page size


def test_usage_filters_and_older_swap_in_place(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.set_price("claude-haiku", 250_000, 1_250_000)
    billing.user("alice@example.com", 100_000_000_000)
    for n in range(PER_PAGE + 3):
        billing.debit(
            f"e{n}", "alice@example.com", model="claude-haiku" if n == 0 else "gpt-4o-mini"
        )
    sign_in(page, "alice@example.com")
    page.goto("/usage")
    page.evaluate("window.__noReload = true")
    rows = page.locator("#usage-table tbody tr")
    expect(rows).to_have_count(PER_PAGE)

    page.locator("#older").click()
    page.wait_for_url("**/usage?before=*")
    expect(rows).to_have_count(3)
    page.get_by_label("Model").select_option("claude-haiku")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/usage?*model=claude-haiku*")
    expect(rows).to_have_count(1)
    assert page.evaluate("window.__noReload") is True
    page.go_back()  # history restores the previous page
    page.wait_for_url("**/usage?before=*")

    page.reload()  # a pushed URL is a real page too
    expect(rows).to_have_count(3)


def test_admin_user_search_swaps_in_place(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.user("boss@example.com", role="admin")
    billing.user("kim@example.com")
    billing.user("lee@example.com")
    sign_in(page, "boss@example.com")
    page.goto("/admin/users")
    page.evaluate("window.__noReload = true")
    page.get_by_label("Search by email").fill("kim")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/admin/users?q=kim")
    expect(page.locator("#users tbody tr")).to_have_count(1)
    expect(page.locator("#users")).to_contain_text("kim@example.com")
    assert page.evaluate("window.__noReload") is True
