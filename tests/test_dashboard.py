"""The user's dashboard, the live balance partial, and the pricing page."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from core import audit, ledger
from core.errors import InsufficientCredits
from core.pricing import MICRO as CR
from tests.conftest import AuthActions, Billing


def _signed_in(auth: AuthActions, billing: Billing, credits_ucr: int) -> None:
    billing.user("alice@example.com", credits_ucr)
    auth.login("alice@example.com")


def test_dashboard_shows_balance_never_rounded_up(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    _signed_in(auth, billing, 10_000 * CR - 1)  # 9,999.999999 credits
    page = client.get("/dashboard").get_data(as_text=True)
    assert '<span class="amount">9,999.99</span>' in page
    assert "10,000.00" not in page


def test_balance_partial_carries_badge_alert_and_figure(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    _signed_in(auth, billing, 100 * CR)
    html = client.get("/dashboard/balance", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert re.search(r'<a id="balance-badge"[^>]*hx-get="/dashboard/balance"', html)
    assert '<div id="low-balance-alert" role="alert" aria-live="polite" hx-swap-oob="true">' in html
    assert '<p id="dashboard-balance" class="big-balance" hx-swap-oob="true">' in html
    assert "100.00 credits" in html
    assert "Your balance is low" in html  # 100 < default threshold of 5,000


def test_low_balance_alert_follows_the_threshold(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    _signed_in(auth, billing, 6_000 * CR)
    assert "Your balance is low" not in client.get("/dashboard").get_data(as_text=True)
    billing.debit("m1", "alice@example.com")  # 4.5 credits: 5,995.5 left
    billing.set(default_low_balance_threshold_ucr=6_000 * CR)
    page = client.get("/pricing").get_data(as_text=True)  # every page carries it
    assert "Your balance is low" in page
    assert "is-low" in page


def test_rejected_usage_appears_as_a_notification(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    _signed_in(auth, billing, 1 * CR)
    with pytest.raises(InsufficientCredits):
        billing.debit("m1", "alice@example.com")
    page = client.get("/dashboard").get_data(as_text=True)
    assert "was refused because your balance is too low" in page


def test_balance_partial_needs_login(client: FlaskClient) -> None:
    response = client.get("/dashboard/balance")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_pricing_shows_exact_credits_and_no_model_prices(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    _signed_in(auth, billing, 0)
    page = client.get("/pricing").get_data(as_text=True)
    for usd, credits in (
        (5, "50,000"),
        (10, "100,000"),
        (25, "250,000"),
        (50, "500,000"),
        (100, "1,000,000"),
    ):
        assert re.search(
            rf'data-amount="{usd}">.*?<span class="amount">{credits}</span>', page, re.S
        ), usd
    assert "gpt-4o-mini" not in page
    assert "0.15" not in page
    assert "not configured" in page
    billing.set_rate(12_345)
    assert '<span class="amount">61,725</span>' in client.get("/pricing").get_data(as_text=True)


def test_badge_polls_at_the_configured_interval(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    _signed_in(auth, billing, 1 * CR)
    for path in ("/dashboard", "/pricing", "/dashboard/balance"):
        assert 'hx-trigger="every 5s, refresh"' in client.get(path).get_data(as_text=True), path


def test_no_low_balance_alert_for_an_admin_holding_no_credits(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("boss@example.com", role="admin")
    auth.login("boss@example.com")
    for path in ("/admin/", "/dashboard", "/dashboard/balance"):
        page = client.get(path).get_data(as_text=True)
        assert "Your balance is low" not in page and "is-low" not in page, path
    # An admin who does hold credits is warned like anyone else.
    with billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "boss@example.com", 10 * CR, "funding")
    assert "Your balance is low" in client.get("/admin/").get_data(as_text=True)


def test_a_user_holding_no_credits_is_warned(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("alice@example.com")
    auth.login("alice@example.com")
    assert "Your balance is low" in client.get("/dashboard").get_data(as_text=True)
