"""Admin analytics, from rollups and indexed queries only.

Nothing here scans the usage history: consumption comes from ``usage_daily``
(one row per user, day and model), revenue from ``topups`` (one row per
payment), rejections through the (status, received_at) index.

Closed days are summed once. A day's rollup rows stop changing when the day
is over (events are rolled up by UTC day of charge, and nothing else writes
``usage_daily``), so the 30-day figures of the days before yesterday are
summed once per process and then moved along a day at a time
(``ClosedDays``); only yesterday and today are read on each request, as
sums the database makes (one row per day and model, one per user: with 10k
users, fetching their ~16k rollup rows and adding them up in Python took
longer than the rest of the page).
Yesterday stays live as a margin for a debit that priced an event just
before midnight and committed just after. With 10k users the window holds
~300k rollup rows; summing them on every page view took over a second
(``docs/PERFORMANCE.md``).

Refunds are attributed to the day the top-up was paid (the refund's own date
is not stored), so a day's net is what that day's sales finally brought in.
"""

from __future__ import annotations

import heapq
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import analytics_store, hold_queries
from core.bounds import exact_sum
from core.clock import as_date
from core.db import Database
from core.enums import TopUpStatus, UsageStatus
from core.hold_queries import HoldSummary
from core.models import AiModel, TopUp, UsageDaily, UsageEvent, User, Wallet


@dataclass(frozen=True)
class Revenue:
    period: str  # YYYY-MM-DD or YYYY-MM
    gross_cents: int
    refunds_cents: int

    @property
    def net_cents(self) -> int:
        return self.gross_cents - self.refunds_cents


@dataclass(frozen=True)
class DayFlow:
    day: date
    sold_ucr: int
    consumed_ucr: int


@dataclass(frozen=True)
class ModelUse:
    model: str
    events: int
    input_tokens: int
    output_tokens: int
    cost_ucr: int
    list_price_uusd: int  # what the tokens cost at the model's current list price


@dataclass(frozen=True)
class Report:
    daily_revenue: list[Revenue]
    monthly_revenue: list[Revenue]
    flows: list[DayFlow]
    by_model: list[ModelUse]
    top_users: list[tuple[str, int]]
    rejected: list[tuple[str, int]]
    liability_ucr: int
    holds: HoldSummary


def report(session: Session, today: date, closed: ClosedDays, days: int = 30) -> Report:
    since = today - timedelta(days=days - 1)
    year_ago = today.replace(day=1) - timedelta(days=366)

    paid_day = func.date(TopUp.paid_at)
    sales = session.execute(
        select(
            paid_day,
            func.sum(TopUp.amount_cents),
            func.sum(TopUp.refunded_cents),
            func.sum(TopUp.credits_ucr),
        )
        .where(
            TopUp.status == TopUpStatus.PAID, TopUp.paid_at >= datetime.combine(year_ago, time.min)
        )
        .group_by(paid_day)
    ).all()
    by_day = {as_date(d): (int(g), int(r), int(c)) for d, g, r, c in sales}
    daily = [Revenue(d.isoformat(), *by_day.get(d, (0, 0, 0))[:2]) for d in _days(since, today)]
    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d, (gross, refunds, _) in by_day.items():
        months[d.strftime("%Y-%m")][0] += gross
        months[d.strftime("%Y-%m")][1] += refunds
    monthly = [Revenue(m, g, r) for m, (g, r) in sorted(months.items(), reverse=True)][:12]

    yesterday = today - timedelta(days=1)
    usage = closed.totals(session, since, yesterday).plus(
        _window_totals(session, max(since, yesterday), None)
    )
    flows = [
        DayFlow(d, by_day.get(d, (0, 0, 0))[2], usage.by_day.get(d, 0)) for d in _days(since, today)
    ]
    by_model = _by_model(session, usage.by_model)
    top = _top_users(session, usage.by_user, 10)
    rejected = session.execute(
        select(UsageEvent.reason_code, func.count())
        .where(
            UsageEvent.status == UsageStatus.REJECTED,
            UsageEvent.received_at >= datetime.combine(since, time.min),
        )
        .group_by(UsageEvent.reason_code)
        .order_by(func.count().desc())
    ).all()
    liability = exact_sum(session, Wallet.balance_ucr)  # ten full wallets pass 64 bits
    held = hold_queries.summary(session, datetime.combine(since, time.min))
    return Report(
        daily,
        monthly,
        flows,
        by_model,
        top,
        [(code or "unknown", int(n)) for code, n in rejected],
        int(liability),
        held,
    )


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


# --- usage totals: closed days once, live days per request -----------------------


@dataclass(frozen=True)
class UsageTotals:
    by_day: dict[date, int]  # day -> µcr consumed
    by_model: dict[int, tuple[int, int, int, int]]  # model id -> events, in, out, µcr
    by_user: dict[int, tuple[int, int]]  # user id -> µcr, events

    def plus(self, other: UsageTotals, sign: int = 1) -> UsageTotals:
        """These totals and ``other``'s added up (``sign`` -1: taken away)."""
        by_day, by_model, by_user = self._copies()
        for day, cost in other.by_day.items():
            by_day[day] = by_day.get(day, 0) + sign * cost
        for model_id, sums in other.by_model.items():
            _add(by_model, model_id, tuple(sign * v for v in sums))
        for user_id, sums in other.by_user.items():
            _add(by_user, user_id, tuple(sign * v for v in sums))
        return UsageTotals(by_day, by_model, by_user)

    def slid(self, since: date, leaving: UsageTotals, entering: UsageTotals) -> UsageTotals:
        """The window moved on: days before ``since`` leave, ``entering`` joins."""
        moved = self.plus(leaving, -1).plus(entering)
        # Every rollup row has events >= 1: no events left means no rows left.
        return UsageTotals(
            {d: v for d, v in moved.by_day.items() if d >= since},
            {m: v for m, v in moved.by_model.items() if v[0]},
            {u: v for u, v in moved.by_user.items() if v[1]},
        )

    def _copies(self) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
        return dict(self.by_day), dict(self.by_model), dict(self.by_user)


def _add(table: dict, key: int, values: tuple[int, ...]) -> None:  # type: ignore[type-arg]
    old = table.get(key)
    table[key] = values if old is None else tuple(a + b for a, b in zip(old, values, strict=True))


class ClosedDays:
    """Per process (one per app): usage totals of days that can no longer change.

    Summed in full once, then moved along a day at a time (only the day
    leaving and the day joining are read). With a ``database`` the totals are
    also stored (``core.analytics_store``) whenever they are computed or
    moved, and a new process starts from the stored ones instead of summing.
    """

    def __init__(self, database: Database | None = None) -> None:
        self._database = database
        self._key: tuple[date, date] | None = None
        self._totals = UsageTotals({}, {}, {})
        self._lock = threading.Lock()
        self.loads = 0  # full sums; for tests and benchmarks
        self.restored = 0  # windows read from the store

    def totals(self, session: Session, since: date, until: date) -> UsageTotals:
        """Totals of the days in [since, until)."""
        with self._lock:
            if self._key == (since, until):
                return self._totals
            if self._key is None and self._database is not None:
                self._restore(session, (until - since).days)
            key = self._key
            if key == (since, until):
                return self._totals
            if key is not None and key[0] <= since < key[1] <= until:
                leaving = _window_totals(session, key[0], since)
                entering = _window_totals(session, key[1], until)
                self._totals = self._totals.slid(since, leaving, entering)
            else:
                self._totals = _window_totals(session, since, until)
                self.loads += 1
            self._key = (since, until)
            if self._database is not None:
                totals = self._totals
                text = analytics_store.encode(totals.by_day, totals.by_model, totals.by_user)
                analytics_store.save(self._database, (until - since).days, (since, until), text)
            return self._totals

    def _restore(self, session: Session, window_days: int) -> None:
        stored = analytics_store.load(session, window_days)
        if stored is not None:
            self._key, text = stored
            self._totals = UsageTotals(*analytics_store.decode(text))
            self.restored += 1


def _window_totals(session: Session, since: date, until: date | None) -> UsageTotals:
    """Totals of the rollup rows of the days in [since, until), or from
    ``since`` on when ``until`` is None; summed by the database, which hands
    back one row per (day, model) and one per user."""
    if until is not None and since >= until:
        return UsageTotals({}, {}, {})
    window = [UsageDaily.day >= since]
    if until is not None:
        window.append(UsageDaily.day < until)
    by_day: dict[date, int] = defaultdict(int)
    by_model: dict[int, tuple[int, ...]] = {}
    for day, model_id, events, tokens_in, tokens_out, cost in session.execute(
        select(
            UsageDaily.day,
            UsageDaily.model_id,
            func.sum(UsageDaily.events),
            func.sum(UsageDaily.input_tokens),
            func.sum(UsageDaily.output_tokens),
            func.sum(UsageDaily.cost_ucr),
        )
        .where(*window)
        .group_by(UsageDaily.day, UsageDaily.model_id)
    ):
        by_day[as_date(day)] += int(cost)
        _add(by_model, model_id, (int(events), int(tokens_in), int(tokens_out), int(cost)))
    by_user = {
        user_id: (int(cost), int(events))
        for user_id, cost, events in session.execute(
            select(UsageDaily.user_id, func.sum(UsageDaily.cost_ucr), func.sum(UsageDaily.events))
            .where(*window)
            .group_by(UsageDaily.user_id)
        )
    }
    return UsageTotals(dict(by_day), by_model, by_user)  # type: ignore[arg-type]


def _by_model(session: Session, totals: dict[int, tuple[int, int, int, int]]) -> list[ModelUse]:
    models = session.execute(
        select(
            AiModel.id,
            AiModel.name,
            AiModel.input_price_uusd_per_m,
            AiModel.output_price_uusd_per_m,
        ).where(AiModel.id.in_(list(totals)))
    ).all()
    uses = [
        ModelUse(
            name,
            totals[mid][0],
            totals[mid][1],
            totals[mid][2],
            totals[mid][3],
            (totals[mid][1] * pin + totals[mid][2] * pout) // 1_000_000,
        )
        for mid, name, pin, pout in models
    ]
    return sorted(uses, key=lambda m: (-m.cost_ucr, m.model))


def _top_users(
    session: Session, by_user: dict[int, tuple[int, int]], limit: int
) -> list[tuple[str, int]]:
    ranked = heapq.nsmallest(limit, by_user.items(), key=lambda kv: (-kv[1][0], kv[0]))
    top = [(user_id, cost) for user_id, (cost, _) in ranked]
    emails = dict(
        session.execute(select(User.id, User.email).where(User.id.in_([u for u, _ in top]))).all()
    )
    return [(emails[user_id], cost) for user_id, cost in top]
