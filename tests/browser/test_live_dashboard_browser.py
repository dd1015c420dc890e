"""Usage reported over HTTP appears in the open dashboard's totals, chart and
recent-usage table without a reload, carried by the balance poll."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import post_usage, sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser


def test_usage_totals_chart_and_recent_table_change_live(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.user("alice@example.com", 10_000_000_000)
    key = billing.api_key("dify")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/dashboard/balance" in r.url else None)
    sign_in(page, "alice@example.com")

    today = page.locator("#usage-stats .stat").first
    recent = page.locator("#recent-usage-table tbody")
    expect(today).to_contain_text("0 requests")
    expect(recent).to_contain_text("No usage yet")
    expect(page.locator("#usage-chart rect[height='70']")).to_have_count(0)
    page.evaluate("window.__noReload = true")

    usage = {"user": "alice@example.com", "model": "gpt-4o-mini"}
    status, _ = post_usage(
        live_server.url, key, event_id="m1", input_tokens=1000, output_tokens=500, **usage
    )
    assert status == 201
    expect(today).to_contain_text("1 requests", timeout=10_000)
    expect(today).to_contain_text("4.50")
    expect(today).to_contain_text("1,500 tokens")
    expect(recent).to_contain_text("gpt-4o-mini")
    expect(recent.locator("tr")).to_have_count(1)
    # Today's bar is now the tallest: the chart was redrawn.
    expect(page.locator("#usage-chart rect[height='70']")).to_have_count(1)
    assert page.evaluate("window.__noReload") is True
    # Every refresh came with the one balance poll, from the dashboard.
    assert polls and all("dashboard=1" in url for url in polls)
