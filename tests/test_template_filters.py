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
    points = charts.user_credits_per_day(Summary(none, none, none, days, []))
    assert points == [("2026-11-01", 0, "0.00 credits"), ("2026-11-02", 4_500_000, "4.50 credits")]
    assert points[1].label == "2026-11-02" and points[1].value == 4_500_000


@pytest.mark.parametrize(
    ("ucr", "text"),
    [(0, "0"), (1_500, "0.0015"), (1_234_001_500, "1,234.0015"), (-5 * CR, "-5")],
)
def test_exact_credits(app: Flask, ucr: int, text: str) -> None:
    assert render(app, "{{ n | exact_credits }}", n=ucr) == text


def test_credits_tip_shows_two_places_and_the_exact_amount(app: Flask) -> None:
    assert render(app, "{{ n | credits_tip }}", n=1_234_001_500) == (
        '<span class="amount" title="1,234.0015 credits">1,234.00</span>'
    )


def test_yes_no(app: Flask) -> None:
    assert render(app, "{{ a | yes_no }} {{ b | yes_no }}", a=True, b=False) == "Yes No"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (
            '{"balance_ucr": 10000000000, "amount_ucr": 1500}',
            "Balance: 10,000 credits; Amount: 0.0015 credits",
        ),
        ('{"max_tokens_per_event": 10000000}', "Max tokens per event: 10,000,000"),
        (
            '{"input_uusd_per_m": 150000, "enabled": true}',
            "Input: $0.15 per 1M tokens; Enabled: Yes",
        ),
        ('{"topup_options_usd": [5, 10, 25]}', "Topup options: $5, $10, $25"),
        ('{"credits_per_usd": 10000, "name": "x"}', "Credits per usd: 10,000; Name: x"),
        ("not json", "not json"),
        (None, ""),
    ],
)
def test_audit_values_in_human_units(app: Flask, raw: str | None, text: str) -> None:
    assert render(app, "{{ v | audit_values }}", v=raw) == text


@pytest.mark.parametrize(
    ("uusd", "text"),
    [
        (24_165, '<span class="amount" title="$0.024165">$0.02</span>'),
        (1_234_560_000, '<span class="amount" title="$1,234.56">$1,234.56</span>'),
        (9_999, '<span class="amount" title="$0.009999">$0.00</span>'),  # never rounded up
    ],
)
def test_usd_with_cents_and_the_exact_amount_in_the_tooltip(
    app: Flask, uusd: int, text: str
) -> None:
    assert render(app, "{{ n | usd_tip }}", n=uusd) == text
