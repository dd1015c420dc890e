"""Bar-chart points, shaped from domain figures for the pages' SVG charts.

A chart is a list of ``ChartPoint(label, value, title)``, oldest first:
``label`` names the bar (a day or a month), ``value`` is its height in the
series' own integer unit (cents, micro-credits), and ``title`` is the value
as people read it, shown on hover. Only relative heights matter to the
chart (``templates/macros/charts.html`` scales them to the tallest bar), so
values stay exact integers; the text goes through ``core.pricing``'s
formatters, the same as the filters pages use.
"""

from __future__ import annotations

from typing import NamedTuple

from core.analytics import Report
from core.pricing import format_cents, format_credits_display
from core.usage import Summary


class ChartPoint(NamedTuple):
    label: str
    value: int
    title: str


def net_revenue_per_day(report: Report) -> list[ChartPoint]:
    """Net revenue (paid minus refunded, in cents) per day of the report."""
    return [
        ChartPoint(r.period, r.net_cents, format_cents(r.net_cents)) for r in report.daily_revenue
    ]


def credits_sold_per_day(report: Report) -> list[ChartPoint]:
    """Credits bought by top-ups (µcr) per day of the report."""
    return [
        ChartPoint(f.day.isoformat(), f.sold_ucr, format_credits_display(f.sold_ucr))
        for f in report.flows
    ]


def credits_used_per_day(report: Report) -> list[ChartPoint]:
    """Credits charged for usage (µcr) per day of the report."""
    return [
        ChartPoint(f.day.isoformat(), f.consumed_ucr, format_credits_display(f.consumed_ucr))
        for f in report.flows
    ]


def user_credits_per_day(summary: Summary) -> list[ChartPoint]:
    """One user's credits charged (µcr) per day of the last 30 days."""
    return [
        ChartPoint(day.isoformat(), cost, f"{format_credits_display(cost)} credits")
        for day, cost in summary.daily
    ]
