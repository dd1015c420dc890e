"""Charts: drawn by uPlot under the strict CSP (the page fixture fails on any
violation), with dated ticks, the hovered day's exact figure, and an empty state."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser


def test_dashboard_chart_has_axes_and_hover_values(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.user("alice@example.com", 10_000_000_000)
    billing.debit("e1", "alice@example.com", input_tokens=1_000_000, output_tokens=0)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, "alice@example.com")
    chart = page.locator("#usage-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart.locator("svg")).to_be_hidden()  # the no-script fallback
    expect(chart.locator(".u-axis")).to_have_count(2)  # dated x axis, value axis (on the canvas)
    box = chart.locator(".u-over").bounding_box()
    assert box is not None and box["width"] <= 390
    # Today is the last day: hover near the right edge.
    chart.locator(".u-over").hover(position={"x": box["width"] - 3, "y": box["height"] / 2})
    expect(chart.locator(".u-legend")).to_contain_text("1,500.00 credits")


def test_empty_charts_say_so(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.user("boss@example.com", role="admin")
    sign_in(page, "boss@example.com")
    expect(page.locator("#usage-chart")).to_contain_text("No usage yet")
    page.goto("/admin/analytics")
    expect(page.locator("#revenue-chart")).to_contain_text("No paid top-ups in the last 30 days")
    expect(page.locator("#used-chart")).to_contain_text("No usage in the last 30 days")
