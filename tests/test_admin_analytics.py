"""Admin analytics over a known dataset: exact figures, and the page."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from core import analytics
from core.clock import utcnow
from core.errors import InsufficientCredits
from core.models import RateChange, TopUp, User
from tests.conftest import AuthActions, Billing
from tests.test_admin_keys import _admin

CR = 1_000_000


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
        report = analytics.report(s, today)
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


def test_analytics_page(client: FlaskClient, auth: AuthActions, dataset: Billing) -> None:
    _admin(auth, dataset)
    page = client.get("/admin/analytics").get_data(as_text=True)
    assert '<strong id="liability">926.00</strong>' in page
    assert (
        '<td class="num">$30.00</td><td class="num">$10.00</td><td class="num">$20.00</td>' in page
    )
    assert "<code>insufficient_credits</code>" in page
    assert "alice@example.com" in page
