"""Every page fits a phone (390x844) and a desktop (1280x800) screen: the
document is never wider than the viewport, with data (100-character model
names and emails) and without, for a user and an admin. The page fixture
fails the test on any Content-Security-Policy violation."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core import accounts
from core.models import AiModel
from tests.browser.helpers import screenshot, sign_in
from tests.conftest import Billing

pytestmark = pytest.mark.browser

VIEWPORTS = [(390, 844), (1280, 800)]
LONG_EMAIL = "a" * 60 + "@" + "b" * 35 + ".com"  # 100 characters
LONG_MODEL = "m" * 100
USER_PAGES = ["/", "/dashboard", "/chat", "/usage", "/pricing", "/settings", "/settings/api-keys"]
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
]


def _assert_fits(page: Any, paths: list[str]) -> None:
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        for path in paths:
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, f"{path} is {scroll_width}px wide at {width}px"


def _admin_paths(billing: Billing, email: str) -> list[str]:
    with billing.db.read_session() as s:
        user_id = accounts.find_user(s, email).id
    with billing.db.read_session() as s:
        model_ids = list(s.scalars(select(AiModel.id)))
    return [f"/admin/users/{user_id}"] + [f"/admin/models/{i}" for i in model_ids]


def test_pages_fit_without_data(page, live_server) -> None:
    billing = Billing(live_server.app)
    billing.user("admin@example.com", role="admin")
    billing.user("new@example.com")
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
    sign_in(page, LONG_EMAIL)
    _assert_fits(page, USER_PAGES)
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
    screenshot(page, "dashboard-phone")
    sign_out = page.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_hidden()
    page.locator(".nav-toggle-label").click()
    expect(sign_out).to_be_visible()
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/usage")
