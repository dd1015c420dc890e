"""The admin settings page says what is wrong with the Stripe set-up."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, Billing, checkout, sign_in_admin
from tests.stripe_fake import FakeStripe


def _panel(client: FlaskClient) -> str:
    page = client.get("/admin/settings").get_data(as_text=True)
    start = page.index('<article id="stripe-status">')
    return page[start : page.index("</article>", start)]


def test_missing_keys_are_named(client: FlaskClient, admin: Billing) -> None:
    panel = _panel(client)
    assert "STRIPE_SECRET_KEY is not set" in panel
    assert "STRIPE_WEBHOOK_SECRET is not set" in panel


def test_a_working_test_mode_set_up_shows_no_problem(shop: Flask) -> None:
    client = shop.test_client()
    sign_in_admin(AuthActions(client), Billing(shop), "boss@example.com")
    panel = _panel(client)
    assert "Mode: <strong>test</strong>" in panel
    assert "keys set" in panel
    assert "<li>" not in panel


def test_a_key_stripe_rejects_is_reported_after_the_failed_call(
    shop: Flask, fake_stripe: FakeStripe, buyer: tuple[FlaskClient, Billing]
) -> None:
    fake_stripe.accepted_key = "sk_test_another_account"
    buyer_client, billing = buyer
    response = checkout(buyer_client)
    assert response.status_code >= 400 or b"could not" in response.data.lower()
    assert "Invalid API Key" not in response.get_data(as_text=True)  # not shown to buyers
    admin = shop.test_client()
    sign_in_admin(AuthActions(admin), billing, "boss@example.com")
    panel = _panel(admin)
    assert "Stripe rejected STRIPE_SECRET_KEY" in panel
    assert "Invalid API Key provided." in panel
