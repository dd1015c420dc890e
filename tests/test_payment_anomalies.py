"""Fulfilment trusts the session Creditline created, not its metadata; Stripe
failures reach users as one short sentence and admins in full.

A session that names another user's top-up, or another session's top-up, or
is paid in another amount or currency than the quote, credits nothing and is
listed for the admins (``/admin/payments`` and the user's admin page).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from core import accounts, payments
from core.models import PaymentAnomaly, StripeEvent, TopUp
from core.pricing import MICRO as CR
from tests.conftest import AuthActions, Billing, checkout, make_test_app, sign_in_admin
from tests.stripe_fake import WEBHOOK_SECRET, FakeStripe, refund_event, session_event, webhook
from tests.stripe_shop import gateway, topup_row


def anomalies(billing: Billing) -> list[PaymentAnomaly]:
    with billing.db.read_session() as s:
        return list(s.scalars(select(PaymentAnomaly).order_by(PaymentAnomaly.id)))


def user_id(billing: Billing, email: str) -> int:
    with billing.db.read_session() as s:
        return accounts.find_user(s, email).id


def topup_row_by_id(billing: Billing, topup_id: int) -> TopUp:
    with billing.db.read_session() as s:
        return s.get(TopUp, topup_id)


def admin_client(shop: Flask, billing: Billing) -> FlaskClient:
    client = shop.test_client()
    sign_in_admin(AuthActions(client), billing, "root@example.com")
    return client


def get_page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.fixture
def victim(shop: Flask, buyer) -> tuple[int, int]:
    """bob@example.com with a pending $5 top-up: (user id, top-up id)."""
    _, billing = buyer
    bob = billing.user("bob@example.com")
    with billing.db.write() as s:
        row = payments.start_topup(s, billing.prices, bob.id, 5)
    return bob.id, row.id


# --- 5: which top-up a session may pay for ----------------------------------------------


@pytest.mark.parametrize("bound", [True, False], ids=["stored-session", "webhook-first"])
def test_session_naming_another_users_topup_credits_nothing(
    shop: Flask, buyer, fake_stripe: FakeStripe, victim, bound: bool
) -> None:
    client, billing = buyer  # alice, the attacker
    alice_id = user_id(billing, "alice@example.com")
    bob_id, topup_id = victim
    if bound:  # bob went to Checkout: his top-up has its own session
        with billing.db.write() as s:
            s.execute(
                update(TopUp).where(TopUp.id == topup_id).values(checkout_session_id="cs_bobs")
            )
    forged = fake_stripe.add_session(topup_id, amount_total=500, client_reference_id=str(alice_id))
    fake_stripe.complete(forged)

    answer = webhook(client, session_event("evt_forged", "checkout.session.completed", forged))
    assert answer.status_code == 200
    assert answer.get_json()["outcome"] == "anomaly"
    assert client.get(f"/pricing/success?session_id={forged}").status_code == 404
    row = topup_row_by_id(billing, topup_id)
    assert (row.status, row.credited_ucr) == ("pending", 0)
    assert row.checkout_session_id == ("cs_bobs" if bound else None)
    assert billing.balance("alice@example.com") == 0
    assert billing.balance("bob@example.com") == 0
    [anomaly] = anomalies(billing)  # once, though seen by webhook and success page
    assert (anomaly.code, anomaly.reference, anomaly.topup_id, anomaly.user_id) == (
        "session_mismatch",
        forged,
        topup_id,
        bob_id,
    )
    assert billing.problems() == []
    admin = admin_client(shop, billing)
    listed = get_page(admin, "/admin/payments")
    assert forged in listed and "session_mismatch" in listed
    assert forged in get_page(admin, f"/admin/users/{bob_id}")


@pytest.mark.parametrize(
    ("amount", "currency"), [(1, "eur"), (1, "usd"), (2500, "eur"), (250_000, "usd")]
)
def test_session_paid_in_another_amount_or_currency_credits_nothing(
    shop: Flask, buyer, fake_stripe: FakeStripe, amount: int, currency: str
) -> None:
    client, billing = buyer
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.sessions[session_id].update(amount_total=amount, currency=currency)
    fake_stripe.complete(session_id)

    outcome = webhook(client, session_event("evt_1", "checkout.session.completed", session_id))
    assert outcome.get_json()["outcome"] == "anomaly"
    assert client.get(f"/pricing/success?session_id={session_id}").status_code == 404
    # A refund of that charge finds no top-up to take from either.
    assert webhook(client, refund_event("evt_2", session_id, amount, amount)).status_code == 200
    row = topup_row(billing, session_id)
    assert (row.status, row.credited_ucr, row.refund_debited_ucr) == ("pending", 0, 0)
    assert billing.balance("alice@example.com") == 0
    [anomaly] = anomalies(billing)
    assert (anomaly.code, anomaly.reference) == ("amount_mismatch", session_id)
    assert f"{amount} {currency}" in anomaly.message
    assert f"{amount} {currency}" in get_page(admin_client(shop, billing), "/admin/payments")


def test_webhook_before_the_session_is_stored_matches_by_metadata_when_all_agree(
    shop: Flask, buyer, fake_stripe: FakeStripe
) -> None:
    """begin_checkout's second transaction has not run yet: the top-up has no
    session id. The session's user, amount and currency agree, so it is that
    top-up's session, and is bound to it now."""
    client, billing = buyer
    alice_id = user_id(billing, "alice@example.com")
    with billing.db.write() as s:
        row = payments.start_topup(s, billing.prices, alice_id, 10)
    session = gateway(shop).create_session(row, "https://x/s", "https://x/c")
    fake_stripe.complete(session.id)
    assert (
        webhook(client, session_event("evt_1", "checkout.session.completed", session.id)).get_json()
    )["outcome"] == "processed"
    assert topup_row(billing, session.id).id == row.id
    assert billing.balance("alice@example.com") == 100_000 * CR
    assert anomalies(billing) == []


def test_webhook_first_with_another_amount_is_an_anomaly(
    shop: Flask, buyer, fake_stripe: FakeStripe
) -> None:
    client, billing = buyer
    alice_id = user_id(billing, "alice@example.com")
    with billing.db.write() as s:
        row = payments.start_topup(s, billing.prices, alice_id, 10)
    forged = fake_stripe.add_session(row.id, amount_total=100, client_reference_id=str(alice_id))
    fake_stripe.complete(forged)
    outcome = webhook(client, session_event("evt_1", "checkout.session.completed", forged))
    assert outcome.get_json()["outcome"] == "anomaly"
    assert topup_row_by_id(billing, row.id).checkout_session_id is None  # not bound
    assert [a.code for a in anomalies(billing)] == ["amount_mismatch"]
    assert billing.balance("alice@example.com") == 0


# --- 8: Stripe failures -------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_shop(db_config) -> Iterator[Flask]:
    """The real SDK with its real HTTP client, pointed at a port nobody listens on."""
    app = make_test_app(
        db_config,
        STRIPE_SECRET_KEY="sk_test_creditline",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=f"http://127.0.0.1:{_closed_port()}",
    )
    yield app
    app.extensions["creditline.db"].dispose()


def test_stripe_unreachable_user_sees_a_short_message_admins_see_the_error(
    unreachable_shop: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    billing = Billing(unreachable_shop)
    billing.user("alice@example.com")
    client = unreachable_shop.test_client()
    AuthActions(client).login("alice@example.com")
    with caplog.at_level(logging.WARNING, logger="core.stripe_gateway"):
        response = checkout(client, 25)

    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Card payments are unavailable right now; please try again in a few minutes." in page
    for leaked in ("support@stripe.com", "127.0.0.1", "Network error", "communicating"):
        assert leaked not in page
    [record] = [r for r in caplog.records if r.name == "core.stripe_gateway"]
    assert record.levelno == logging.WARNING and record.exc_info is not None
    [anomaly] = anomalies(billing)
    assert anomaly.code == "provider_error"
    assert "support@stripe.com" in anomaly.message  # the SDK's own text, for admins
    assert anomaly.user_id == topup_row_by_id(billing, anomaly.topup_id).user_id
    listed = get_page(admin_client(unreachable_shop, billing), "/admin/payments")
    assert "provider_error" in listed and "Unexpected error communicating with Stripe" in listed


def test_stripe_down_on_the_success_page_shows_the_short_message(
    buyer, fake_stripe: FakeStripe
) -> None:
    client, billing = buyer
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.down = True
    response = client.get(f"/pricing/success?session_id={session_id}")
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Card payments are unavailable right now" in page
    assert "Stripe is down" not in page
    assert [a.code for a in anomalies(billing)] == ["provider_error"]


def test_stripe_down_during_a_webhook_is_5xx_and_the_redelivery_applies(
    buyer, fake_stripe: FakeStripe
) -> None:
    client, billing = buyer
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    event = session_event("evt_1", "checkout.session.completed", session_id)
    fake_stripe.down = True
    failed = webhook(client, event)
    assert failed.status_code == 503
    assert "Stripe is down" not in failed.get_data(as_text=True)
    with billing.db.read_session() as s:
        assert s.get(StripeEvent, "evt_1") is None  # not acknowledged as processed
    fake_stripe.down = False
    assert webhook(client, event).get_json()["outcome"] == "processed"
    assert billing.balance("alice@example.com") == 250_000 * CR
