"""Users' time zones: IANA names checked against the system's tz database
(``zoneinfo``), and stored UTC times shown in a zone with its abbreviation.

Stored times are naive UTC (``core.clock``). Pages show them in the signed-in
user's zone ("2026-11-27 01:08 CET"); CSV exports and the API stay in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.orm import Session

from core.errors import ValidationError
from core.models import User

DEFAULT = "UTC"
FORMATS = {
    "second": "%Y-%m-%d %H:%M:%S",
    "minute": "%Y-%m-%d %H:%M",
}


@cache
def names() -> tuple[str, ...]:
    """Every zone name the tz database knows, sorted (for the settings form)."""
    return tuple(sorted(available_timezones()))


def clean(name: str | None) -> str:
    """The zone name as given, if the tz database knows it; else a field error.
    Blank means UTC."""
    name = (name or "").strip()
    if not name:
        return DEFAULT
    if name not in names():
        raise ValidationError(
            "Unknown time zone: use an IANA name such as Europe/Berlin or America/New_York.",
            field="time_zone",
        )
    return name


@cache
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT)


def abbreviation(moment: datetime) -> str:
    """The zone's abbreviation at an aware moment; numeric ones as "UTC+05:30"."""
    text = moment.tzname() or ""
    if text[:1] in "+-":
        offset = text if ":" in text or len(text) < 5 else f"{text[:3]}:{text[3:]}"
        return f"UTC{offset}"
    return text


def local(value: datetime, name: str, to: str = "second") -> str:
    """A stored time as text in the zone ``name``, with its abbreviation:
    '2026-11-27 01:08:30 CET'."""
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    moment = moment.astimezone(zone(name))
    return f"{moment.strftime(FORMATS[to])} {abbreviation(moment)}"


def set_time_zone(session: Session, user_id: int, name: str | None) -> str:
    """Save the user's zone (checked by ``clean``); returns the stored name."""
    name = clean(name)
    user = session.get(User, user_id)
    if user is not None:
        user.time_zone = name
    return name
