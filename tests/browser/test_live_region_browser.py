"""The low-balance alert is a live region: a poll that brings it unchanged
leaves the element alone (a screen reader does not announce it again)."""

import pytest
from playwright.sync_api import expect

from core import audit, ledger
from core.pricing import MICRO as CR
from tests.browser.helpers import sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser


def _next_polls(page, count: int) -> None:
    for _ in range(count):
        with page.expect_response(lambda r: "/dashboard/balance" in r.url):
            pass


def test_unchanged_alert_is_not_replaced_but_a_change_is(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.user("alice@example.com", 10 * CR)  # below the default 5,000 threshold
    sign_in(page, "alice@example.com")
    alert = page.locator("#low-balance-alert")
    expect(alert).to_contain_text("Your balance is low")
    page.evaluate("document.getElementById('low-balance-alert').dataset.seen = 'yes'")
    _next_polls(page, 3)
    assert alert.get_attribute("data-seen") == "yes"  # the same element: not re-announced

    with billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "alice@example.com", 10_000 * CR, "top up")
    expect(alert).not_to_contain_text("balance is low", timeout=10_000)
    assert alert.get_attribute("data-seen") is None  # replaced when it changed
