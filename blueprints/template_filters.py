"""Jinja filters: how amounts, counts and times are written on pages.

Templates format through these and nothing else, so a figure reads the same
on every page:

- ``credits``, ``cents``, ``usd_per_m``: money, through ``core.pricing``'s
  exact formatters (integers in, text out; never a float).
- ``trim_zeros``: drops trailing zeros from an exact decimal ("4.500000" -> "4.5").
- ``thousands``: a count or a rate with thousands separators (12,500).
- ``utc``: a datetime as UTC text, to the second (default), ``"minute"`` or
  ``"day"``. Stored times are naive UTC (``core.clock``); an aware value is
  converted first. Pages say "(UTC)" in the column heading or after the time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

from core.pricing import format_cents, format_credits_display, format_usd_per_m

UTC_FORMATS = {
    "second": "%Y-%m-%d %H:%M:%S",
    "minute": "%Y-%m-%d %H:%M",
    "day": "%Y-%m-%d",
}


def thousands(value: int) -> str:
    """12500 -> '12,500'."""
    return f"{value:,}"


def utc(value: datetime, to: str = "second") -> str:
    """A time as UTC text: '2026-11-24 09:05:03', or to the minute or the day."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime(UTC_FORMATS[to])


def trim_zeros(text: str) -> str:
    """'4.500000' -> '4.5', '12.000000' -> '12' (display of exact amounts)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def init_app(app: Flask) -> None:
    app.add_template_filter(format_credits_display, "credits")
    app.add_template_filter(format_cents, "cents")
    app.add_template_filter(format_usd_per_m, "usd_per_m")
    app.add_template_filter(trim_zeros, "trim_zeros")
    app.add_template_filter(thousands, "thousands")
    app.add_template_filter(utc, "utc")
