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
    expect(page.locator("#model-chart")).to_contain_text("No usage in the last 30 days")
    page.goto("/admin/analytics")
    expect(page.locator("#revenue-chart")).to_contain_text("No paid top-ups in the last 30 days")
    expect(page.locator("#used-chart")).to_contain_text("No usage in the last 30 days")
    expect(page.locator("#model-chart")).to_contain_text("No usage in the last 30 days")


def test_credits_by_model_read_on_a_phone(page, live_server) -> None:
    """Each model's figure and share are text beside its bar; a 100-character
    model name wraps inside the 390 px screen, and the longest bar spans the row."""
    billing = Billing(live_server.app)
    billing.set_price("m" * 100, 150_000, 600_000)
    billing.user("alice@example.com", 10_000_000_000)
    billing.debit("e1", "alice@example.com", input_tokens=1_000_000, output_tokens=0)
    billing.debit("e2", "alice@example.com", model="m" * 100, input_tokens=500_000, output_tokens=0)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, "alice@example.com")
    rows = page.locator("#model-chart li")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("gpt-4o-mini")
    expect(rows.nth(0)).to_contain_text("1,500.00 credits · 66.7 %")
    expect(rows.nth(1)).to_contain_text("750.00 credits · 33.3 %")
    for n in range(2):
        box = rows.nth(n).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    full = rows.nth(0).locator("svg").bounding_box()
    half = rows.nth(1).locator("svg rect").bounding_box()
    assert full is not None and half is not None
    assert round(half["width"] * 2) in range(round(full["width"]) - 2, round(full["width"]) + 3)
