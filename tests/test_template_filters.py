"""Template filters and chart points: how pages write counts, times and charts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from flask import Flask, render_template_string

from core import charts
from core.analytics import DayFlow, Report, Revenue
from core.hold_queries import HoldSummary
from core.usage import Summary, Totals

CR = 1_000_000  # µcr per credit


def render(app: Flask, source: str, **context: object) -> str:
    with app.test_request_context():
        return render_template_string(source, **context)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (999, "999"), (12_500, "12,500"), (-1_234_567, "-1,234,567")],
)
def test_thousands(app: Flask, value: int, text: str) -> None:
    assert render(app, "{{ n | thousands }}", n=value) == text


def test_utc_to_the_second_minute_or_day(app: Flask) -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, 890_000)  # stored times are naive UTC
    source = "{{ t | utc }}|{{ t | utc('minute') }}|{{ t | utc('day') }}"
    assert render(app, source, t=when) == "2026-03-04 05:06:07|2026-03-04 05:06|2026-03-04"


def test_utc_converts_an_aware_time(app: Flask) -> None:
    tokyo = datetime(2026, 1, 1, 8, 30, tzinfo=timezone(timedelta(hours=9)))
    assert render(app, "{{ t | utc }}", t=tokyo) == "2025-12-31 23:30:00"
    assert render(app, "{{ t | utc }}", t=tokyo.astimezone(UTC)) == "2025-12-31 23:30:00"


def test_money_filters_and_trim_zeros(app: Flask) -> None:
    source = (
        "{{ a | credits }}|{{ a | credits(6) | trim_zeros }}|{{ c | cents }}|{{ p | usd_per_m }}"
    )
    assert render(app, source, a=1_234_500_000, c=123_456, p=150_000) == (
        "1,234.50|1,234.5|$1,234.56|0.15"
    )


def test_chart_points_from_the_analytics_report() -> None:
    report = Report(
        daily_revenue=[Revenue("2026-11-01", 2_500, 500), Revenue("2026-11-02", 0, 0)],
        monthly_revenue=[],
        flows=[DayFlow(date(2026, 11, 1), 25_000 * CR, 1_500_500_000)],
        by_model=[],
        top_users=[],
        rejected=[],
        liability_ucr=0,
        holds=HoldSummary(0, 0, 0, 0, 0, 0),
    )
    assert charts.net_revenue_per_day(report) == [
        ("2026-11-01", 2_000, "$20.00"),
        ("2026-11-02", 0, "$0.00"),
    ]
    assert charts.credits_sold_per_day(report) == [("2026-11-01", 25_000 * CR, "25,000.00")]
    assert charts.credits_used_per_day(report) == [("2026-11-01", 1_500_500_000, "1,500.50")]


def test_chart_points_of_a_users_usage() -> None:
    none = Totals(0, 0, 0)
    days = [(date(2026, 11, 1), 0), (date(2026, 11, 2), 4_500_000)]
    points = charts.user_credits_per_day(Summary(none, none, none, days))
    assert points == [("2026-11-01", 0, "0.00 credits"), ("2026-11-02", 4_500_000, "4.50 credits")]
    assert points[1].label == "2026-11-02" and points[1].value == 4_500_000
