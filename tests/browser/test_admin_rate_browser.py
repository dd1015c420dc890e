"""An admin changes the exchange rate in Chromium, watching the live preview."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import screenshot, sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser


def test_rate_change_with_live_preview(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.set_price("gpt-4o", 2_500_000, 10_000_000)
    billing.user("boss@example.com", 0, role="admin")
    billing.user("alice@example.com", 12_345_678_900)
    sign_in(page, "boss@example.com")

    page.goto("/admin/rate")
    preview = page.locator("#rate-preview")
    expect(preview).to_contain_text("10,000 → 10,000")
    rate_input = page.get_by_label("New rate (credits per USD)")
    rate_input.press_sequentially("12500", delay=40)
    expect(preview).to_contain_text("10,000 → 12,500")
    expect(page.locator("#preview-topups tr", has_text="$25")).to_contain_text("312,500")
    expect(page.locator("#preview-samples tr", has_text="gpt-4o-mini")).to_contain_text("5.625")
    expect(page.locator("#preview-liability")).to_contain_text("$1.23")  # 12,345.6789 credits now
    expect(page.locator("#preview-liability")).to_contain_text("$0.98")  # at 12,500 per USD
    rate_input.fill("-1")
    rate_input.press("End")
    rate_input.press_sequentially("0")
    expect(preview).to_contain_text("Rate must be between 1 and")
    rate_input.fill("")
    rate_input.press_sequentially("12500", delay=20)
    expect(preview).to_contain_text("10,000 → 12,500")
    screenshot(page, "admin-rate")

    page.get_by_label("Reason").fill("Supplier prices went up")
    page.get_by_role("button", name="Change rate").click()
    expect(page.locator("#current-rate")).to_have_text("12,500")
    first_row = page.locator("#rate-history tbody tr").first
    expect(first_row).to_contain_text("boss@example.com")
    expect(first_row).to_contain_text("Supplier prices went up")
    expect(first_row).to_contain_text("12,500")

    page.goto("/pricing")
    expect(page.locator('.topup-option[data-amount="25"] .amount')).to_have_text("312,500")
