"""Chart data, shaped from domain figures for the pages' charts.

Two shapes: per-day series for the dated bar charts, and shares by category
(model) for the horizontal bar lists.

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

from core.analytics import ModelUse, Report
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


class ShareBar(NamedTuple):
    """One category of a horizontal bar list: ``permille`` is the bar's length
    against the largest category (0-1000), ``percent`` its share of the total
    as text ("42.5 %"), ``title`` the value as people read it."""

    label: str
    value: int
    title: str
    permille: int
    percent: str


def _percent(part: int, whole: int) -> str:
    tenths = (part * 1000 + whole // 2) // whole if whole else 0
    return f"{tenths // 10}.{tenths % 10} %"


def shares(points: list[tuple[str, int]]) -> list[ShareBar]:
    """Categories with their integer µcr values, largest first as given: bar
    lengths against the largest (at least 1 ‰ for any non-zero value, so it
    shows), shares of the total, rounded half up."""
    peak = max((v for _, v in points), default=0)
    total = sum(v for _, v in points)
    return [
        ShareBar(
            label,
            value,
            f"{format_credits_display(value)} credits",
            max(value * 1000 // peak, 1 if value else 0) if peak else 0,
            _percent(value, total),
        )
        for label, value in points
    ]


def user_credits_by_model(summary: Summary) -> list[ShareBar]:
    """One user's credits charged per model in the last 30 days."""
    return shares(summary.by_model)


def credits_by_model(uses: list[ModelUse]) -> list[ShareBar]:
    """Credits charged per model in the report's window (all users)."""
    return shares([(m.model, m.cost_ucr) for m in uses if m.cost_ucr > 0])
