"""Closed-day usage totals kept in the database, so a new process starts warm.

``core.analytics.ClosedDays`` sums the rollups of the days that can no longer
change (before yesterday, UTC) once per process. With 10k users that sum
reads ~300k rollup rows and took most of a second, on the first analytics
view after every restart and in every worker. The sum is now stored here
(one row per window length) whenever a process computes it or moves it along
a day, and a new process reads the stored sum instead (one row, a JSON text
of integers).

Invariants:
- The stored totals are exactly the rollup sums over ``[since, until)``;
  every day in that range was closed when they were computed, and closed
  days' rollups never change (``core.analytics``).
- A stored window only moves forward: a process with an older window never
  replaces a newer one.
- It is derived data: deleting the row is always safe (the next view sums
  the closed days again and stores them).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Date, Integer, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.clock import as_date, utcnow
from core.db import retry_lost_races
from core.models import Base

if TYPE_CHECKING:
    from core.db import Database

Window = tuple[date, date]  # [since, until)


class UsageWindowTotals(Base):
    """The stored sum of the closed days' rollups for one window length."""

    __tablename__ = "usage_window_totals"

    window_days: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    since: Mapped[date] = mapped_column(Date)
    until: Mapped[date] = mapped_column(Date)
    totals: Mapped[str] = mapped_column(Text)  # JSON: by_day, by_model, by_user
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


def encode(by_day: dict, by_model: dict, by_user: dict) -> str:  # type: ignore[type-arg]
    """Totals as JSON text; integers stay exact (JSON numbers of any size)."""
    return json.dumps(
        {
            "by_day": {d.isoformat(): v for d, v in by_day.items()},
            "by_model": {str(k): list(v) for k, v in by_model.items()},
            "by_user": {str(k): list(v) for k, v in by_user.items()},
        },
        separators=(",", ":"),
    )


def decode(text: str) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    raw = json.loads(text)
    return (
        {date.fromisoformat(d): int(v) for d, v in raw["by_day"].items()},
        {int(k): tuple(int(x) for x in v) for k, v in raw["by_model"].items()},
        {int(k): tuple(int(x) for x in v) for k, v in raw["by_user"].items()},
    )


def load(session: Session, window_days: int) -> tuple[Window, str] | None:
    """The stored window and its JSON totals, if any."""
    row = session.execute(
        select(UsageWindowTotals.since, UsageWindowTotals.until, UsageWindowTotals.totals).where(
            UsageWindowTotals.window_days == window_days
        )
    ).first()
    if row is None:
        return None
    return (as_date(row[0]), as_date(row[1])), row[2]


def save(database: Database, window_days: int, window: Window, totals: str) -> None:
    """Store the totals of ``window`` unless a newer window is already stored."""
    since, until = window

    def store(s: Session) -> None:
        row = s.get(UsageWindowTotals, window_days, with_for_update=True)
        if row is None:  # two processes storing a first window at once: the loser retries
            s.add(
                UsageWindowTotals(window_days=window_days, since=since, until=until, totals=totals)
            )
        elif as_date(row.until) <= until:
            row.since, row.until, row.totals, row.computed_at = since, until, totals, utcnow()

    retry_lost_races(database.write, store, IntegrityError)
