"""Jinja filters: how amounts, counts and times are written on pages.

Templates format through these and nothing else, so a figure reads the same
on every page:

- ``credits``, ``cents``, ``usd_per_m``: money, through ``core.pricing``'s
  exact formatters (integers in, text out; never a float).
- ``trim_zeros``: drops trailing zeros from an exact decimal ("4.500000" -> "4.5").
- ``thousands``: a count or a rate with thousands separators (12,500).
- ``credits_tip``: the display figure (two places, truncated) in a ``<span>``
  whose ``title`` holds the exact amount, for tables of small charges.
- ``exact_credits``: every significant place, with separators (1,234.0015).
- ``usd_tip``: an amount in micro-USD as dollars and cents (truncated), the
  exact amount in the tooltip ("$0.02", title "$0.024165").
- ``yes_no``: a flag as "Yes" / "No".
- ``audit_values``: an audit entry's before/after JSON in human units.
Display precision: credits are shown with two decimal places, truncated
(never rounded up); the exact amount is in the tooltip, the CSV and the API.

- ``local``: a stored time in the signed-in user's time zone (Settings; UTC
  when signed out), to the second (default) or ``"minute"``, always followed
  by the zone's abbreviation ("2026-11-27 01:08:30 CET"): one date format on
  every page, the zone always shown (``core.time_zones``).
- ``utc``: a datetime as UTC text, to the second (default), ``"minute"`` or
  ``"day"``. Stored times are naive UTC (``core.clock``); an aware value is
  converted first. For what must stay UTC (CSV exports).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask_login import current_user
from markupsafe import Markup

from core import time_zones
from core.pricing import format_cents, format_credits, format_credits_display, format_usd_per_m

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


def local(value: datetime, to: str = "second") -> str:
    """A stored time in the viewer's zone, with the zone's abbreviation."""
    name = getattr(current_user, "time_zone", None) or time_zones.DEFAULT
    return time_zones.local(value, name, to)


def trim_zeros(text: str) -> str:
    """'4.500000' -> '4.5', '12.000000' -> '12' (display of exact amounts)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def exact_credits(ucr: int) -> str:
    """1234001500 -> '1,234.0015': every significant place, thousands separated."""
    text = format_credits(ucr)
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}" + (f".{frac}" if frac else "")


def credits_tip(ucr: int) -> Markup:
    """The display figure, with the exact amount in its tooltip."""
    return Markup('<span class="amount" title="{} credits">{}</span>').format(
        exact_credits(ucr), format_credits_display(ucr)
    )


def usd_tip(uusd: int) -> Markup:
    """Micro-USD as USD with cents (truncated toward zero), exact in the tooltip."""
    cents = uusd // 10_000 if uusd >= 0 else -(-uusd // 10_000)
    return Markup('<span class="amount" title="${}">{}</span>').format(
        exact_credits(uusd), format_cents(cents)
    )


def yes_no(value: bool | None) -> str:
    return "Yes" if value else "No"


def _audit_value(key: str, value: Any) -> tuple[str, str]:
    """One before/after field as (label, text), in the units people read."""
    units = [
        ("_uusd_per_m", lambda v: f"${format_usd_per_m(v)} per 1M tokens"),
        ("_ucr", lambda v: f"{exact_credits(v)} credits"),
        ("_cents", format_cents),
    ]
    if key.endswith("_usd") and isinstance(value, list):  # top-up options in dollars
        units.append(("_usd", lambda v: ", ".join(f"${int(x):,}" for x in v)))
    label = key
    text: str | None = None
    for suffix, render in units:
        if key.endswith(suffix) and isinstance(value, int | list):
            label = key.removesuffix(suffix)
            if not isinstance(value, bool):
                text = render(value)
            break
    if text is None:
        if isinstance(value, bool):
            text = yes_no(value)
        elif isinstance(value, int):
            text = f"{value:,}"
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        elif value is None:
            text = "none"
        else:
            text = str(value)
    return label.replace("_", " ").capitalize(), text


def audit_values(raw: str | None) -> str:
    """'{"balance_ucr": 5000000}' -> 'Balance: 5 credits' (text kept if not JSON)."""
    if not raw:
        return ""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(data, dict):
        return raw
    return "; ".join("{}: {}".format(*_audit_value(k, v)) for k, v in data.items())


def init_app(app: Flask) -> None:
    app.add_template_filter(format_credits_display, "credits")
    app.add_template_filter(format_cents, "cents")
    app.add_template_filter(format_usd_per_m, "usd_per_m")
    app.add_template_filter(trim_zeros, "trim_zeros")
    app.add_template_filter(thousands, "thousands")
    app.add_template_filter(utc, "utc")
    app.add_template_filter(local, "local")
    app.add_template_filter(exact_credits, "exact_credits")
    app.add_template_filter(credits_tip, "credits_tip")
    app.add_template_filter(yes_no, "yes_no")
    app.add_template_filter(usd_tip, "usd_tip")
    app.add_template_filter(audit_values, "audit_values")
