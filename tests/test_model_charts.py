"""Credits by model: the user's last 30 days on the dashboard (and its live
poll) and every user's on admin analytics, as a bar list with each model's
figure and share as text, and an empty state."""

from __future__ import annotations

import re
from datetime import date

from flask.testing import FlaskClient

from core import charts, usage
from core.models import AiModel, UsageDaily, User
from core.pricing import MICRO as CR
from tests.conftest import AuthActions, Billing


def _rollup(billing: Billing, email: str, model: str, day: date, cost: int) -> None:
    with billing.db.write() as s:
        user = s.query(User).filter_by(email=email).one()
        s.add(
            UsageDaily(
                user_id=user.id,
                day=day,
                model_id=s.query(AiModel).filter_by(name=model).one().id,
                events=1,
                input_tokens=1,
                output_tokens=1,
                cost_ucr=cost,
            )
        )


def test_shares_are_exact_integers_against_the_largest() -> None:
    bars = charts.shares([("a", 3 * CR), ("b", CR), ("c", 1)])
    assert [(b.label, b.permille, b.percent) for b in bars] == [
        ("a", 1000, "75.0 %"),
        ("b", 333, "25.0 %"),
        ("c", 1, "0.0 %"),  # a tiny non-zero figure still shows a sliver
    ]
    assert bars[0].title == "3.00 credits"
    assert charts.shares([]) == []


def test_user_summary_by_model_covers_the_last_30_days_only(billing: Billing) -> None:
    """On the 31st the month began 30 days ago: its first day counts for the
    month, not for the 30 days the by-model figures cover."""
    billing.set_price("gpt-4o", 2_500_000, 10_000_000)
    billing.user("alice@example.com")
    today = date(2026, 10, 31)
    _rollup(billing, "alice@example.com", "gpt-4o-mini", today, 4 * CR)
    _rollup(billing, "alice@example.com", "gpt-4o", today, 75 * CR)
    _rollup(billing, "alice@example.com", "gpt-4o-mini", date(2026, 10, 2), 2 * CR)
    _rollup(billing, "alice@example.com", "gpt-4o", date(2026, 10, 1), 500 * CR)
    with billing.db.read_session() as s:
        user_id = s.query(User).filter_by(email="alice@example.com").one().id
        summary = usage.summary(s, user_id, today)
    assert summary.by_model == [("gpt-4o", 75 * CR), ("gpt-4o-mini", 6 * CR)]
    assert summary.last_30_days.cost_ucr == 81 * CR
    assert summary.month.cost_ucr == 581 * CR


def test_dashboard_lists_credits_by_model(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.set_price("gpt-4o", 2_500_000, 10_000_000)
    billing.user("alice@example.com", 1_000 * CR)
    auth.login("alice@example.com")
    page = client.get("/dashboard").get_data(as_text=True)
    assert "No usage in the last 30 days" in page
    billing.debit("a1", "alice@example.com")  # 4.5 credits
    billing.debit("a2", "alice@example.com", model="gpt-4o")  # 75 credits
    for html in (
        client.get("/dashboard").get_data(as_text=True),
        client.get("/dashboard/balance?dashboard=1").get_data(as_text=True),
    ):
        chart = html[html.index('id="model-chart"') :]
        rows = re.findall(r"<code>([^<]+)</code></span>\s*<span[^>]*>([^<]+)</span>", chart)
        assert rows == [
            ("gpt-4o", "75.00 credits · 94.3 %"),
            ("gpt-4o-mini", "4.50 credits · 5.7 %"),
        ]
        assert '<rect width="1000"' in chart and '<rect width="60"' in chart


def test_analytics_charts_consumption_by_model(client: FlaskClient, admin: Billing) -> None:
    page = client.get("/admin/analytics").get_data(as_text=True)
    assert "No usage in the last 30 days" in page[page.index('id="model-chart"') :]
    admin.user("alice@example.com", 1_000 * CR)
    admin.user("bob@example.com", 1_000 * CR)
    admin.debit("a1", "alice@example.com")
    admin.debit("b1", "bob@example.com")
    page = client.get("/admin/analytics").get_data(as_text=True)
    chart = page[
        page.index('id="model-chart"') : page.index("</figure>", page.index("model-chart"))
    ]
    assert "<code>gpt-4o-mini</code>" in chart
    assert "9.00 credits · 100.0 %" in chart
