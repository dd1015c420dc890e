"""What users see of their usage: totals from the daily rollup, and history.

Totals never scan ``usage_events``: they sum at most 31 rollup rows per model,
so the dashboard costs the same for a user with 1k or 1M events. History is
paginated by keyset (``id < cursor``) on the (user_id, id) index, so page 1000
costs what page 1 does, and the CSV export streams in chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.models import AiModel, UsageDaily, UsageEvent
from core.paging import keyset_page


@dataclass(frozen=True)
class Totals:
    events: int
    tokens: int
    cost_ucr: int


@dataclass(frozen=True)
class Summary:
    today: Totals
    month: Totals
    last_30_days: Totals
    daily: list[tuple[date, int]]  # (day, µcr) for each of the last 30 days, oldest first
    # (model, µcr) charged in the last 30 days, largest first; models with no charge left out
    by_model: list[tuple[str, int]]


def summary(session: Session, user_id: int, today: date) -> Summary:
    """Totals of today, this month and the last 30 days, per day and per model
    (the month may start before the 30 days: the 31st's month has 31 days)."""
    start = min(today - timedelta(days=29), today.replace(day=1))
    since_30 = today - timedelta(days=29)
    rows = session.execute(
        select(
            UsageDaily.day,
            AiModel.name,
            func.sum(UsageDaily.events),
            func.sum(UsageDaily.input_tokens + UsageDaily.output_tokens),
            func.sum(UsageDaily.cost_ucr),
        )
        .join(AiModel, AiModel.id == UsageDaily.model_id)
        .where(UsageDaily.user_id == user_id, UsageDaily.day >= start)
        .group_by(UsageDaily.day, AiModel.name)
    ).all()
    by_day: dict[date, tuple[int, int, int]] = {}
    per_model: dict[str, int] = {}
    for day, model, e, t, c in rows:
        old = by_day.get(day, (0, 0, 0))
        by_day[day] = (old[0] + int(e), old[1] + int(t), old[2] + int(c))
        if since_30 <= day <= today:
            per_model[model] = per_model.get(model, 0) + int(c)

    def total(since: date) -> Totals:
        picked = [v for d, v in by_day.items() if since <= d <= today]
        return (
            Totals(*(sum(col) for col in zip(*picked, strict=True))) if picked else Totals(0, 0, 0)
        )

    window = [today - timedelta(days=n) for n in range(29, -1, -1)]
    return Summary(
        today=total(today),
        month=total(today.replace(day=1)),
        last_30_days=total(today - timedelta(days=29)),
        daily=[(d, by_day.get(d, (0, 0, 0))[2]) for d in window],
        by_model=sorted(
            ((m, c) for m, c in per_model.items() if c > 0), key=lambda mc: (-mc[1], mc[0])
        ),
    )


@dataclass(frozen=True)
class Filters:
    since: date | None = None
    until: date | None = None  # inclusive
    model: str | None = None


def _history_query(user_id: int, filters: Filters) -> Select:
    query = select(UsageEvent).where(UsageEvent.user_id == user_id)
    if filters.since:
        query = query.where(UsageEvent.received_at >= datetime.combine(filters.since, time.min))
    if filters.until and filters.until < date.max:  # no day after 9999-12-31 to stop at
        end = datetime.combine(filters.until + timedelta(days=1), time.min)
        query = query.where(UsageEvent.received_at < end)
    if filters.model:
        query = query.where(UsageEvent.model_name == filters.model)
    return query


def history_page(
    session: Session, user_id: int, filters: Filters, before_id: int | None, per_page: int = 50
) -> tuple[list[UsageEvent], int | None]:
    """One page, newest first; returns the rows and the cursor for the next page."""
    return keyset_page(
        session, _history_query(user_id, filters), UsageEvent.id, before_id, per_page
    )


def recent_events(session: Session, user_id: int, limit: int = 10) -> list[UsageEvent]:
    """The user's newest ``limit`` events, charged or refused, newest first."""
    return history_page(session, user_id, Filters(), None, limit)[0]


def history_stream(
    session: Session, user_id: int, filters: Filters, chunk: int = 2000
) -> Iterator[UsageEvent]:
    """Every matching event, newest first, fetched ``chunk`` rows at a time."""
    before: int | None = None
    while True:
        rows, before = history_page(session, user_id, filters, before, per_page=chunk)
        yield from rows
        session.expunge_all()  # keep memory flat over a million rows
        if before is None:
            return


def count_history(session: Session, user_id: int, filters: Filters, at_most: int) -> int:
    """How many events match, counting no further than ``at_most``."""
    matching = (
        _history_query(user_id, filters).with_only_columns(UsageEvent.id).limit(at_most).subquery()
    )
    return session.scalar(select(func.count()).select_from(matching)) or 0


def models_used(session: Session, user_id: int) -> list[str]:
    """Model names in the user's rollups, for the filter dropdown."""
    return list(
        session.scalars(
            select(AiModel.name)
            .join(UsageDaily, UsageDaily.model_id == AiModel.id)
            .where(UsageDaily.user_id == user_id)
            .distinct()
            .order_by(AiModel.name)
        )
    )
