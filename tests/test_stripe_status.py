"""The admin settings page says what is wrong with the Stripe set-up."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core import signature_failures
from core.clock import utcnow
from core.signature_failures import SignatureFailure
from tests.conftest import AuthActions, Billing, checkout, sign_in_admin
from tests.metrics_reader import delta, parse
from tests.stripe_fake import FakeStripe, session_event, webhook


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


def test_webhooks_signed_with_another_secret_show_on_the_panel_and_in_metrics(
    shop: Flask, fake_stripe: FakeStripe, buyer: tuple[FlaskClient, Billing]
) -> None:
    buyer_client, billing = buyer
    admin = shop.test_client()
    sign_in_admin(AuthActions(admin), billing, "boss@example.com")
    assert "failed signature verification" not in _panel(admin)
    before = parse(admin.get("/metrics").get_data(as_text=True))
    checkout(buyer_client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    payload = session_event("evt_wrong", "checkout.session.completed", session_id)
    started = utcnow()
    for _ in range(3):  # Stripe signs with the secret of another endpoint
        assert webhook(buyer_client, payload, secret="whsec_another_endpoint").status_code == 400
    unsigned = buyer_client.post("/webhooks/stripe", data="{}", content_type="application/json")
    assert unsigned.status_code == 400
    assert billing.balance("alice@example.com") == 0
    after = parse(admin.get("/metrics").get_data(as_text=True))
    assert delta(before, after, "creditline_stripe_webhook_signature_failures_total") == 4
    with billing.db.read_session() as s:  # one row, however many were refused
        [row] = s.scalars(select(SignatureFailure)).all()
    assert row.failures == 4 and started <= row.first_at <= row.last_at <= utcnow()
    since, last = (t.strftime("%Y-%m-%d %H:%M") for t in (row.first_at, row.last_at))
    panel = _panel(admin)
    assert (
        '<li id="webhook-signature-failures">4 webhook deliveries failed signature '
        f"verification since {since} UTC, last at {last} UTC: check STRIPE_WEBHOOK_SECRET.</li>"
    ) in panel, panel
    assert "keys set" not in panel

    # The secret fixed: a delivery verifies, and the refusals are listed as past.
    good = session_event("evt_right", "checkout.session.completed", session_id)
    assert webhook(buyer_client, good).get_json()["outcome"] == "processed"
    panel = _panel(admin)
    assert "<li" not in panel and "keys set" in panel
    assert "4 webhook deliveries failed signature verification" in panel
    assert "a delivery has verified since" in panel


def test_refused_deliveries_are_written_one_at_a_time_and_counted_exactly(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = app.extensions["creditline.db"]
    recorder = signature_failures.Recorder(db)
    real_add = signature_failures.add
    writes: list[int] = []
    first_entered, release = threading.Event(), threading.Event()

    def add(*args: Any) -> None:
        writes.append(args[2])  # n
        if len(writes) == 1:
            first_entered.set()
            assert release.wait(10)
        real_add(*args)

    monkeypatch.setattr(signature_failures, "add", add)
    writer = threading.Thread(target=recorder.failed)
    writer.start()
    assert first_entered.wait(10)
    flood = [threading.Thread(target=recorder.failed) for _ in range(49)]
    for t in flood:
        t.start()
    for t in flood:
        t.join(10)  # they returned while the first write was still in flight
        assert not t.is_alive()
    release.set()
    writer.join(10)
    assert writes == [1, 49]  # the writer in flight wrote the flood's count in one more round
    with db.read_session() as s:
        assert signature_failures.of(s).count == 50
