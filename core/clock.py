"""One place that says what "now" is: naive UTC, as every timestamp is stored."""

from datetime import UTC, date, datetime


def utcnow() -> datetime:
    """Current time as naive UTC (the database stores UTC without zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_date(value: object) -> date:
    """A DATE column as read back: a date on PostgreSQL, ISO text on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
