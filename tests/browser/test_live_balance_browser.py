"""Usage reported over HTTP shows up on an open dashboard without a reload."""

import pytest
from playwright.sync_api import expect

from core import audit, ledger
from core.pricing import MICRO as CR
from tests.browser.helpers import post_usage, sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser


def test_balance_and_low_alert_change_live(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.user("alice@example.com", 5_004_500_000)  # 5,004.5 credits; alert below 5,000
    key = billing.api_key("dify")
    sign_in(page, "alice@example.com")

    badge = page.locator("#balance-badge")
    figure = page.locator("#dashboard-balance .amount")
    alert = page.locator("#low-balance-alert")
    expect(figure).to_have_text("5,004.50")
    expect(alert).not_to_contain_text("balance is low")
    page.evaluate("window.__noReload = true")

    usage = {
        "user": "alice@example.com",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 500,
    }
    assert post_usage(live_server.url, key, event_id="m1", **usage)[0] == 201
    expect(figure).to_have_text("5,000.00", timeout=10_000)
    expect(badge).to_have_text("5,000.00 credits")
    expect(alert).not_to_contain_text("balance is low")

    status, body = post_usage(live_server.url, key, event_id="m2", **usage)
    assert (status, body["balance"]) == (201, "4995.5")
    expect(figure).to_have_text("4,995.50", timeout=10_000)
    expect(alert).to_contain_text("Your balance is low")
    expect(alert.get_by_role("button", name="Top up")).to_be_visible()
    expect(badge).to_have_class("balance-badge is-low")

    with billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "alice@example.com", 10 * CR, "goodwill")
    expect(alert).not_to_contain_text("balance is low", timeout=10_000)
    assert page.evaluate("window.__noReload") is True  # the page was never reloaded
