"""The README's screenshots of the dashboard and admin analytics, desktop
(1280x800) and phone (390x844), over a month of usage on several models:
both per-day charts drawn, the by-model list in view. With
UPDATE_SCREENSHOTS=1 they are written to docs/screenshots/."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete, select

from core import accounts
from core.clock import utcnow
from core.models import RateChange, TopUp, UsageDaily, UsageEvent
from core.pricing import MICRO as CR
from tests.browser.helpers import screenshot, sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet"]


def _a_month_of_usage(billing: Billing) -> None:
    """Real charges, then spread over the last 30 days (events and rollups
    moved together, as if charged then), and paid top-ups on a few days."""
    billing.set_price("gpt-4o", 2_500_000, 10_000_000)
    billing.set_price("claude-3-5-sonnet", 3_000_000, 15_000_000)
    billing.user("alice@example.com", 20_000 * CR)
    billing.user("bob@example.com", 20_000 * CR)
    billing.user("admin@example.com", role="admin")
    for n in range(60):
        who = "alice@example.com" if n % 3 else "bob@example.com"
        billing.debit(f"e{n}", who, input_tokens=2_000 + 700 * (n % 9), model=MODELS[n % 5 % 3])
    now = utcnow()
    with billing.db.write() as s:
        rollup: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for n, event in enumerate(s.scalars(select(UsageEvent).order_by(UsageEvent.id))):
            when = now - timedelta(days=29 - n // 2, minutes=60 - n)  # oldest first
            event.received_at = when
            sums = rollup[(event.user_id, when.date(), event.model_id)]
            for i, v in enumerate((1, event.input_tokens, event.output_tokens, event.cost_ucr)):
                sums[i] += v
        s.flush()
        s.execute(delete(UsageDaily))
        for (user_id, day, model_id), (events, tin, tout, cost) in rollup.items():
            s.add(
                UsageDaily(
                    user_id=user_id,
                    day=day,
                    model_id=model_id,
                    events=events,
                    input_tokens=tin,
                    output_tokens=tout,
                    cost_ucr=cost,
                )
            )
        rate = s.scalars(select(RateChange).order_by(RateChange.id.desc())).first()
        user = accounts.find_user(s, "alice@example.com")
        for days, dollars in ((27, 25), (18, 10), (9, 50), (2, 25), (0, 5)):
            s.add(
                TopUp(
                    user_id=user.id,
                    wallet_id=user.wallet.id,
                    amount_cents=dollars * 100,
                    credits_ucr=dollars * 10_000 * CR,
                    credits_per_usd=10_000,
                    rate_version_id=rate.id,
                    status="paid",
                    paid_at=now - timedelta(days=days),
                )
            )


def test_dashboard_and_analytics_screenshots(page, live_server) -> None:
    billing = Billing(live_server.app)
    _a_month_of_usage(billing)
    for (width, height), suffix in (((1280, 800), ""), ((390, 844), "-phone")):
        page.set_viewport_size({"width": width, "height": height})
        sign_in(page, "alice@example.com")
        expect(page.locator("#usage-chart canvas")).to_have_count(1)
        expect(page.locator("#model-chart li")).to_have_count(3)
        screenshot(page, "dashboard" + suffix)
        page.context.clear_cookies()
        sign_in(page, "admin@example.com")
        page.goto("/admin/analytics")
        for chart in ("#revenue-chart", "#sold-chart", "#used-chart"):
            expect(page.locator(f"{chart} canvas")).to_have_count(1)
        expect(page.locator("#model-chart li")).to_have_count(3)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(page, "analytics" + suffix)
        page.context.clear_cookies()
