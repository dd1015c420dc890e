"""Admin analytics, from rollups and indexed queries only.

Nothing here scans the usage history: consumption comes from ``usage_daily``
(one row per user, day and model), revenue from ``topups`` (one row per
payment), rejections through the (status, received_at) index.

Refunds are attributed to the day the top-up was paid (the refund's own date
is not stored), so a day's net is what that day's sales finally brought in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def report(session: Session, today: date, days: int = 30) -> Report:
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
        .where(TopUp.status == "paid", TopUp.paid_at >= datetime.combine(year_ago, time.min))
        .group_by(paid_day)
    ).all()
    by_day = {_day(d): (int(g), int(r), int(c)) for d, g, r, c in sales}
    daily = [Revenue(d.isoformat(), *by_day.get(d, (0, 0, 0))[:2]) for d in _days(since, today)]
    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d, (gross, refunds, _) in by_day.items():
        months[d.strftime("%Y-%m")][0] += gross
        months[d.strftime("%Y-%m")][1] += refunds
    monthly = [Revenue(m, g, r) for m, (g, r) in sorted(months.items(), reverse=True)][:12]

    consumed = dict(
        session.execute(
            select(UsageDaily.day, func.sum(UsageDaily.cost_ucr))
            .where(UsageDaily.day >= since)
            .group_by(UsageDaily.day)
        ).all()
    )
    consumed = {_day(k): int(v) for k, v in consumed.items()}
    flows = [
        DayFlow(d, by_day.get(d, (0, 0, 0))[2], consumed.get(d, 0)) for d in _days(since, today)
    ]

    models = session.execute(
        select(
            AiModel.name,
            AiModel.input_price_uusd_per_m,
            AiModel.output_price_uusd_per_m,
            func.sum(UsageDaily.events),
            func.sum(UsageDaily.input_tokens),
            func.sum(UsageDaily.output_tokens),
            func.sum(UsageDaily.cost_ucr),
        )
        .join(UsageDaily, UsageDaily.model_id == AiModel.id)
        .where(UsageDaily.day >= since)
        .group_by(
            AiModel.id,
            AiModel.name,
            AiModel.input_price_uusd_per_m,
            AiModel.output_price_uusd_per_m,
        )
    ).all()
    by_model = sorted(
        (
            ModelUse(
                name,
                int(ev),
                int(it),
                int(ot),
                int(cost),
                (int(it) * pin + int(ot) * pout) // 1_000_000,
            )
            for name, pin, pout, ev, it, ot, cost in models
        ),
        key=lambda m: m.cost_ucr,
        reverse=True,
    )

    top = session.execute(
        select(User.email, func.sum(UsageDaily.cost_ucr).label("cost"))
        .join(UsageDaily, UsageDaily.user_id == User.id)
        .where(UsageDaily.day >= since)
        .group_by(User.id, User.email)
        .order_by(func.sum(UsageDaily.cost_ucr).desc())
        .limit(10)
    ).all()
    rejected = session.execute(
        select(UsageEvent.reason_code, func.count())
        .where(
            UsageEvent.status == "rejected",
            UsageEvent.received_at >= datetime.combine(since, time.min),
        )
        .group_by(UsageEvent.reason_code)
        .order_by(func.count().desc())
    ).all()
    liability = session.scalar(select(func.coalesce(func.sum(Wallet.balance_ucr), 0)))
    return Report(
        daily,
        monthly,
        flows,
        by_model,
        [(email, int(cost)) for email, cost in top],
        [(code or "unknown", int(n)) for code, n in rejected],
        int(liability),
    )


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]
