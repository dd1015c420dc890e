"""One place that says what "now" is: naive UTC, as every timestamp is stored."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Current time as naive UTC (the database stores UTC without zone)."""
    return datetime.now(UTC).replace(tzinfo=None)
