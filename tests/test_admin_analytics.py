"""Admin analytics over a known dataset: exact figures, and the page."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from flask.testing import FlaskClient

from core import analytics, holds
from core.clock import utcnow
from core.errors import InsufficientCredits
from core.hold_queries import HoldSummary
from core.models import AiModel, RateChange, TopUp, UsageDaily, User
from core.pricing import MICRO as CR
from tests.conftest import Billing
from tests.hold_helpers import request_for, take


def _paid_topup(billing: Billing, email: str, dollars: int, refunded_cents: int = 0) -> None:
    with billing.db.write() as s:
        user = s.query(User).filter_by(email=email).one()
        rate = s.query(RateChange).order_by(RateChange.id.desc()).first()
        s.add(
            TopUp(
                user_id=user.id,
                wallet_id=user.wallet.id,
                amount_cents=dollars * 100,
                credits_ucr=dollars * 10_000 * CR,
                credits_per_usd=10_000,
                rate_version_id=rate.id,
                status="paid",
                paid_at=utcnow(),
                refunded_cents=refunded_cents,
            )
        )


@pytest.fixture
def dataset(billing: Billing) -> Billing:
    billing.set_price("gpt-4o", 2_500_000, 10_000_000)
    billing.user("alice@example.com", 1_000 * CR)
    billing.user("bob@example.com", 10 * CR)
    _paid_topup(billing, "alice@example.com", 25, refunded_cents=1000)
    _paid_topup(billing, "bob@example.com", 5)
    billing.debit("a1", "alice@example.com")  # 4.5 credits, gpt-4o-mini
    billing.debit("a2", "alice@example.com", model="gpt-4o")  # 75 credits
    billing.debit("b1", "bob@example.com")  # 4.5
    with pytest.raises(InsufficientCredits):
        billing.debit("b2", "bob@example.com", model="gpt-4o")
    return billing


def test_report_figures_are_exact(dataset: Billing) -> None:
    today = utcnow().date()
    with dataset.db.read_session() as s:
        report = analytics.report(s, today, analytics.ClosedDays())
    assert report.daily_revenue[-1].gross_cents == 3000
    assert report.daily_revenue[-1].refunds_cents == 1000
    assert report.daily_revenue[-1].net_cents == 2000
    assert len(report.daily_revenue) == 30
    assert (report.monthly_revenue[0].gross_cents, report.monthly_revenue[0].net_cents) == (
        3000,
        2000,
    )
    assert report.flows[-1].sold_ucr == 300_000 * CR
    assert report.flows[-1].consumed_ucr == 84 * CR
    assert [(m.model, m.events, m.cost_ucr, m.list_price_uusd) for m in report.by_model] == [
        ("gpt-4o", 1, 75 * CR, 7_500),  # $0.0075 at list price
        ("gpt-4o-mini", 2, 9 * CR, 900),
    ]
    assert report.top_users == [("alice@example.com", 79_500_000), ("bob@example.com", 4_500_000)]
    assert report.rejected == [("insufficient_credits", 1)]
    assert report.liability_ucr == 1_010 * CR - 84 * CR


def test_analytics_page(client: FlaskClient, dataset: Billing, admin: Billing) -> None:
    page = client.get("/admin/analytics").get_data(as_text=True)
    assert '<strong id="liability">926.00</strong>' in page
    assert (
        '<td class="num">$30.00</td><td class="num">$10.00</td><td class="num">$20.00</td>' in page
    )
    assert "<code>insufficient_credits</code>" in page
    # USD with cents (truncated), the exact list-price cost in the tooltip.
    assert '<span class="amount" title="$0.0075">$0.00</span>' in page
    assert "alice@example.com" in page


def _rollup(billing: Billing, email: str, model: str, day: date, events: int, cost: int) -> None:
    with billing.db.write() as s:
        user = s.query(User).filter_by(email=email).one()
        model_id = s.query(AiModel).filter_by(name=model).one().id
        row = UsageDaily(user_id=user.id, day=day, model_id=model_id, events=events)
        row.input_tokens, row.output_tokens, row.cost_ucr = events * 10, events, cost
        s.add(row)


def test_closed_days_are_summed_once_and_live_days_every_time(dataset: Billing) -> None:
    """Days before yesterday come from the per-process cache, yesterday and
    today from the rollups on every call; the cache moves along a day at a
    time. Together the figures stay exact."""
    today = utcnow().date()
    ago = lambda n: today - timedelta(days=n)  # noqa: E731
    _rollup(dataset, "bob@example.com", "gpt-4o", ago(40), 1, 999 * CR)  # outside the window
    _rollup(dataset, "alice@example.com", "gpt-4o-mini", ago(29), 1, 10 * CR)  # closed, leaves next
    _rollup(dataset, "bob@example.com", "gpt-4o", ago(20), 3, 200 * CR)  # closed
    _rollup(dataset, "bob@example.com", "gpt-4o-mini", ago(2), 2, 7 * CR)  # closed, the edge
    _rollup(dataset, "alice@example.com", "gpt-4o", ago(1), 1, 5 * CR)  # live (yesterday)
    closed = analytics.ClosedDays()

    def report(on: date = today) -> analytics.Report:
        with dataset.db.read_session() as s:
            return analytics.report(s, on, closed)

    def models(r: analytics.Report) -> list[tuple[str, int, int]]:
        return [(m.model, m.events, m.cost_ucr) for m in r.by_model]

    first = report()
    consumed = {f.day: f.consumed_ucr for f in first.flows}
    assert consumed[ago(29)] == 10 * CR and consumed[ago(20)] == 200 * CR
    assert (consumed[ago(2)], consumed[ago(1)], consumed[today]) == (7 * CR, 5 * CR, 84 * CR)
    assert models(first) == [("gpt-4o", 5, 280 * CR), ("gpt-4o-mini", 5, 26 * CR)]
    assert first.top_users == [("bob@example.com", 211_500_000), ("alice@example.com", 94_500_000)]

    dataset.debit("a3", "alice@example.com", model="gpt-4o")  # today, after the first report
    _rollup(dataset, "bob@example.com", "gpt-4o", ago(1), 1, 1 * CR)  # yesterday, late
    second = report()
    assert (second.flows[-2].consumed_ucr, second.flows[-1].consumed_ucr) == (6 * CR, 159 * CR)
    assert second.top_users == [
        ("bob@example.com", 212_500_000),
        ("alice@example.com", 169_500_000),
    ]
    assert closed.loads == 1  # the closed days were summed once

    tomorrow = report(today + timedelta(days=1))  # ago(29) leaves, yesterday closes
    consumed = {f.day: f.consumed_ucr for f in tomorrow.flows}
    assert ago(29) not in consumed and consumed[ago(1)] == 6 * CR and consumed[today] == 159 * CR
    assert models(tomorrow) == [("gpt-4o", 7, 356 * CR), ("gpt-4o-mini", 4, 16 * CR)]
    assert tomorrow.top_users == [
        ("bob@example.com", 212_500_000),
        ("alice@example.com", 159_500_000),
    ]
    assert closed.loads == 1  # moved along, not summed again
    with dataset.db.read_session() as s:  # the same figures from scratch
        fresh = analytics.report(s, today + timedelta(days=1), analytics.ClosedDays())
    assert (fresh.flows, fresh.by_model, fresh.top_users) == (
        tomorrow.flows,
        tomorrow.by_model,
        tomorrow.top_users,
    )


def test_a_new_process_starts_from_the_stored_closed_days(dataset: Billing) -> None:
    """The closed days' sum is stored when it is computed or moved along; a
    new process (a new ``ClosedDays``) reads it instead of summing, moves it
    along from there, and its figures equal a fresh sum. A stale stored window
    is never taken for another one."""
    today = utcnow().date()
    ago = lambda n: today - timedelta(days=n)  # noqa: E731
    _rollup(dataset, "alice@example.com", "gpt-4o-mini", ago(29), 1, 10 * CR)
    _rollup(dataset, "bob@example.com", "gpt-4o", ago(20), 3, 200 * CR)
    _rollup(dataset, "alice@example.com", "gpt-4o", ago(1), 1, 5 * CR)

    def report(closed: analytics.ClosedDays, on: date = today) -> analytics.Report:
        with dataset.db.read_session() as s:
            return analytics.report(s, on, closed)

    def figures(r: analytics.Report) -> tuple[object, ...]:
        return (r.flows, r.by_model, r.top_users)

    first_process = analytics.ClosedDays(dataset.db)
    first = report(first_process)
    assert (first_process.loads, first_process.restored) == (1, 0)

    second_process = analytics.ClosedDays(dataset.db)
    assert figures(report(second_process)) == figures(first)
    assert (second_process.loads, second_process.restored) == (0, 1)  # read, not summed

    tomorrow = today + timedelta(days=1)
    third_process = analytics.ClosedDays(dataset.db)
    moved = report(third_process, tomorrow)  # ago(29) leaves, yesterday closes
    assert (third_process.loads, third_process.restored) == (0, 1)
    assert figures(moved) == figures(report(analytics.ClosedDays(), tomorrow))

    fourth_process = analytics.ClosedDays(dataset.db)  # stored: tomorrow's window
    assert figures(report(fourth_process)) == figures(first)  # an older window: summed
    assert (fourth_process.loads, fourth_process.restored) == (1, 1)
    fifth_process = analytics.ClosedDays(dataset.db)  # the newer window was kept
    assert figures(report(fifth_process, tomorrow)) == figures(moved)
    assert (fifth_process.loads, fifth_process.restored) == (0, 1)


def test_gateway_holds_and_shortfalls(client: FlaskClient, admin: Billing) -> None:
    """Running holds, holds ended without a charge, and the calls that cost
    more than their hold (charged the hold; the rest is the shortfall)."""
    admin.user("kim@example.com", 100 * CR)
    request = request_for(admin, "kim@example.com")  # a 4.5-credit worst case
    running, short, released = (take(admin, request) for _ in range(3))
    lost = take(admin, request_for(admin, "kim@example.com", ttl=timedelta(seconds=-1)))
    with admin.db.raw_write() as cur:
        holds.settle(cur, short, 2_000, 1_000, utcnow())  # costs 9: 4.5 charged, 4.5 short
        holds.release(cur, released, "no_usage", utcnow())
        assert holds.expire_overdue(cur, utcnow()) == [lost.id]
    with admin.db.read_session() as s:
        report = analytics.report(s, utcnow().date(), analytics.ClosedDays())
    assert report.holds == HoldSummary(
        active=1,
        reserved_ucr=running.amount_ucr,
        released=1,
        expired=1,
        short_calls=1,
        shortfall_ucr=4_500_000,
    )
    page = client.get("/admin/analytics").get_data(as_text=True)
    assert "1 calls, 4.50 credits reserved" in page
    assert '<td class="num" id="shortfall">1 calls, 4.50 credits not billed</td>' in page
