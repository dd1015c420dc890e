"""Every page fits a phone (390x844) and a desktop (1280x800) screen and
passes axe-core: the document is never wider than the viewport, and axe
reports no serious or critical WCAG 2.x A/AA violation, with data
(100-character model names and emails) and without, signed out, for a user
and for an admin. The page fixture fails the test on any
Content-Security-Policy violation."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core import accounts, audit, dify_apps, integration_keys, outbox, signup, user_keys
from core.clock import utcnow
from core.dify_models import DifyApp
from core.gateway import routing
from core.gateway.models import Upstream, UserApiKey
from core.models import AiModel, IntegrationKey, RateChange, TopUp
from core.rawdb import RawCursor
from tests.browser.axe import axe_violations
from tests.browser.helpers import sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser

VIEWPORTS = [(390, 844), (1280, 800)]
LONG_EMAIL = "a" * 60 + "@" + "b" * 35 + ".com"  # 100 characters
LONG_MODEL = "m" * 100
PUBLIC_PAGES = ["/auth/login", "/auth/register"]
USER_PAGES = [
    "/",
    "/dashboard",
    "/chat",
    "/usage",
    "/pricing",
    "/pricing/cancel",
    "/settings",
    "/settings/api-keys",
    "/auth/logout",
]
ADMIN_PAGES = [
    "/admin/",
    "/admin/analytics",
    "/admin/audit",
    "/admin/dify-apps",
    "/admin/holds",
    "/admin/keys",
    "/admin/models",
    "/admin/payments",
    "/admin/rate",
    "/admin/routes",
    "/admin/settings",
    "/admin/upstreams",
    "/admin/users",
    "/admin/webhooks",
]


def _assert_fits(page: Any, paths: list[str]) -> None:
    """Each path at each viewport: answered 200, no wider than the screen, no
    serious or critical axe finding. Every finding of the walk is reported."""
    problems: list[str] = []
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        for path in paths:
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            if scroll_width > width:
                problems.append(f"{path} at {width}px: {scroll_width}px wide")
            problems += [f"{path} at {width}px: {v}" for v in axe_violations(page)]
    assert not problems, "\n".join(problems)


def _admin_paths(billing: Billing, email: str) -> list[str]:
    """The pages of each row that exists: users, models, upstreams, Dify apps,
    and the confirmation pages of revoking keys."""
    with billing.db.read_session() as s:
        user_id = accounts.find_user(s, email).id
        paths = [f"/admin/users/{user_id}"]
        paths += [f"/admin/models/{i}" for i in s.scalars(select(AiModel.id))]
        paths += [f"/admin/upstreams/{i}" for i in s.scalars(select(Upstream.id))]
        paths += [f"/admin/dify-apps/{i}" for i in s.scalars(select(DifyApp.id))]
        paths += [f"/admin/keys/{i}/revoke" for i in s.scalars(select(IntegrationKey.id))]
        keys = s.scalars(select(UserApiKey.id).where(UserApiKey.user_id == user_id))
        paths += [f"/admin/users/{user_id}/keys/{i}/revoke" for i in keys]
    return paths


def _user_paths(billing: Billing, email: str) -> list[str]:
    with billing.db.read_session() as s:
        user_id = accounts.find_user(s, email).id
        keys = s.scalars(select(UserApiKey.id).where(UserApiKey.user_id == user_id))
        paths = [f"/settings/api-keys/{i}/revoke" for i in keys]
        paths += [f"/chat/{slug}" for slug in s.scalars(select(DifyApp.slug))]
    return USER_PAGES + paths


def _fill(billing: Billing, email: str) -> None:
    """A row on every list: a paid top-up, an upstream and its route, a Dify
    app, the user's gateway key, an invitation and a webhook delivery."""
    app = billing.app
    box = app.extensions["creditline.gateway"].box
    billing.set(webhook_url="http://127.0.0.1:9/hook")
    with billing.db.write() as s:
        user = accounts.find_user(s, email)
        rate = s.scalars(select(RateChange).order_by(RateChange.id.desc())).first()
        s.add(
            TopUp(
                user_id=user.id,
                wallet_id=user.wallet.id,
                amount_cents=2_500,
                credits_ucr=250_000_000_000,
                credits_per_usd=10_000,
                rate_version_id=rate.id,
                status="paid",
                paid_at=utcnow(),
            )
        )
        routing.create_upstream(s, audit.CLI, box, "u" * 60, "http://127.0.0.1:9/v1", "sk-x")
    with billing.db.write() as s:
        routing.set_route(s, audit.CLI, LONG_MODEL, "u" * 60, upstream_model="m")
        dify_apps.create_app(
            s,
            audit.CLI,
            box,
            slug="support",
            name="Support bot " + "s" * 60,
            base_url="http://127.0.0.1:9",
            api_key="app-x",
            billing_model=LONG_MODEL,
        )
        user_keys.create(s, audit.CLI, accounts.find_user(s, email).id, "k" * 100, limit_ucr=10**9)
        signup.create_invitation(s, audit.CLI, "test")
        integration_keys.create(s, audit.CLI, "dify-prod")
        outbox.enqueue_webhook(RawCursor.of_session(s), "test.event", {"n": 1})


def test_pages_fit_without_data(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.user("admin@example.com", role="admin")
    billing.user("new@example.com")
    _assert_fits(page, PUBLIC_PAGES)
    sign_in(page, "new@example.com")
    _assert_fits(page, USER_PAGES)
    page.context.clear_cookies()
    sign_in(page, "admin@example.com")
    _assert_fits(page, USER_PAGES + ADMIN_PAGES + _admin_paths(billing, "new@example.com"))


def test_pages_fit_with_long_names(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.set_price(LONG_MODEL, 150_000, 600_000)
    billing.user(LONG_EMAIL, 5_000_000_000)
    billing.user("admin@example.com", role="admin")
    for n in range(30):
        billing.debit(f"e{n}", LONG_EMAIL, model=LONG_MODEL if n % 2 else "gpt-4o-mini")
    billing.api_key("k" * 60)
    _fill(billing, LONG_EMAIL)
    sign_in(page, LONG_EMAIL)
    _assert_fits(page, _user_paths(billing, LONG_EMAIL))
    page.context.clear_cookies()
    sign_in(page, "admin@example.com")
    _assert_fits(page, USER_PAGES + ADMIN_PAGES + _admin_paths(billing, LONG_EMAIL))


def test_phone_menu_opens_and_keeps_the_balance_in_view(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.user("alice@example.com", 12_345_000_000)
    for n in range(6):
        billing.debit(f"e{n}", "alice@example.com", input_tokens=1000 * (n + 1))
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, "alice@example.com")
    expect(page.locator("#balance-badge")).to_be_in_viewport()
    sign_out = page.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_hidden()
    page.locator(".nav-toggle-label").click()
    expect(sign_out).to_be_visible()
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/usage")
