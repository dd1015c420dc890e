"""Stripe top-ups (spec §4) through the real stripe SDK with an injected HTTP client."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.models import LedgerEntry, StripeEvent, TopUp, Wallet
from core.pricing import MICRO as CR
from tests.conftest import AuthActions, Billing, checkout
from tests.stripe_fake import (
    FakeStripe,
    dispute_event,
    refund_event,
    session_event,
    signed,
    webhook,
)

CREDITS_25 = 250_000 * CR  # $25 at 10,000 credits per USD


def topup(billing: Billing) -> TopUp:
    with billing.db.read_session() as s:
        return s.scalars(select(TopUp).order_by(TopUp.id.desc())).first()


# --- checkout ---------------------------------------------------------------------------


def test_checkout_creates_pending_topup_then_session(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    response = checkout(client, 25)
    assert response.status_code == 303
    session_id = fake_stripe.last_session_id()
    assert response.headers["Location"] == f"https://checkout.stripe.test/c/pay/{session_id}"

    (request,) = fake_stripe.requests
    row = topup(billing)
    assert (request.method, request.path) == ("POST", "/v1/checkout/sessions")
    assert request.form["mode"] == "payment"
    assert request.form["line_items[0][price_data][unit_amount]"] == "2500"
    assert request.form["line_items[0][price_data][currency]"] == "usd"
    assert request.form["line_items[0][quantity]"] == "1"
    assert request.form["client_reference_id"] == str(row.user_id)
    assert request.form["metadata[topup_id]"] == str(row.id)
    assert request.form["success_url"] == (
        "http://creditline.test/pricing/success?session_id={CHECKOUT_SESSION_ID}"
    )
    assert request.form["cancel_url"] == "http://creditline.test/pricing/cancel"
    assert request.headers["Idempotency-Key"] == f"creditline-topup-{row.id}"
    assert request.headers["Authorization"] == "Bearer sk_test_creditline"

    assert (row.status, row.amount_cents, row.credits_ucr, row.credits_per_usd) == (
        "pending",
        2500,
        CREDITS_25,
        10_000,
    )
    assert row.checkout_session_id == session_id
    assert billing.balance("alice@example.com") == 0  # nothing until paid


@pytest.mark.parametrize("amount", [7, 0, -5, "25.5", "abc", "", 10**30])
def test_checkout_refuses_amounts_not_offered(buyer, fake_stripe: FakeStripe, amount) -> None:
    client, billing = buyer
    response = checkout(client, amount)
    assert response.status_code == 400
    assert "Choose one of the top-up amounts" in response.get_data(as_text=True)
    assert fake_stripe.requests == []
    assert topup(billing) is None


def test_checkout_needs_csrf(buyer, fake_stripe: FakeStripe) -> None:
    client, _ = buyer
    assert client.post("/pricing/checkout", data={"amount_usd": 25}).status_code == 400
    assert fake_stripe.requests == []


def test_without_stripe_keys_pricing_says_so_and_checkout_refuses(client, auth, billing) -> None:
    billing.user("bob@example.com")
    auth.login("bob@example.com")
    page = client.get("/pricing").get_data(as_text=True)
    assert "Card payments are not configured" in page
    assert 'action="/pricing/checkout"' not in page
    response = checkout(client, 25)
    assert response.status_code == 400
    assert "not configured" in response.get_data(as_text=True)


# --- fulfilment ----------------------------------------------------------------------------


def test_success_page_credits_once(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    for _ in range(3):
        page = client.get(f"/pricing/success?session_id={session_id}").get_data(as_text=True)
        assert '<strong id="credits-added">250,000</strong>' in page
    assert billing.balance("alice@example.com") == CREDITS_25
    assert billing.problems() == []


def test_success_page_of_another_user_is_404(shop: Flask, buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    billing.user("mallory@example.com")
    other = shop.test_client()
    AuthActions(other).login("mallory@example.com")
    assert other.get(f"/pricing/success?session_id={session_id}").status_code == 404
    assert other.get("/pricing/success?session_id=cs_unknown").status_code == 404
    assert other.get("/pricing/success?session_id=<script>").status_code == 404


def test_quote_survives_a_rate_change(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    checkout(client, 25)  # quoted at 10,000 credits per USD
    billing.set_rate(20_000)
    fake_stripe.complete(fake_stripe.last_session_id())
    webhook(
        client, session_event("evt_1", "checkout.session.completed", fake_stripe.last_session_id())
    )
    assert billing.balance("alice@example.com") == CREDITS_25
    checkout(client, 25)  # a new session quotes the new rate
    assert topup(billing).credits_ucr == 2 * CREDITS_25


# --- webhooks --------------------------------------------------------------------------------


def test_valid_event_credits_once_even_sent_five_times(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    payload = session_event("evt_completed", "checkout.session.completed", session_id)
    outcomes = [webhook(client, payload).get_json()["outcome"] for _ in range(5)]
    assert outcomes == ["processed"] + ["duplicate"] * 4
    assert billing.balance("alice@example.com") == CREDITS_25
    with billing.db.read_session() as s:
        assert s.scalars(select(StripeEvent.id)).all() == ["evt_completed"]


def test_completed_async_succeeded_and_success_page_credit_once(
    buyer, fake_stripe: FakeStripe
) -> None:
    client, billing = buyer
    checkout(client, 50)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    webhook(client, session_event("evt_a", "checkout.session.completed", session_id))
    webhook(client, session_event("evt_b", "checkout.session.async_payment_succeeded", session_id))
    client.get(f"/pricing/success?session_id={session_id}")
    assert billing.balance("alice@example.com") == 2 * CREDITS_25
    with billing.db.read_session() as s:
        entries = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "topup")).all()
    assert [e.reference for e in entries] == [f"topup:{session_id}"]


def test_unpaid_completion_credits_nothing_until_async_success(
    buyer, fake_stripe: FakeStripe
) -> None:
    client, billing = buyer
    checkout(client, 10)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id, paid=False)  # e.g. a bank debit still pending
    webhook(client, session_event("evt_1", "checkout.session.completed", session_id))
    assert topup(billing).status == "pending"
    assert billing.balance("alice@example.com") == 0
    page = client.get(f"/pricing/success?session_id={session_id}").get_data(as_text=True)
    assert "Payment processing" in page

    fake_stripe.settle(session_id)
    webhook(client, session_event("evt_2", "checkout.session.async_payment_succeeded", session_id))
    assert topup(billing).status == "paid"
    assert billing.balance("alice@example.com") == 100_000 * CR


def test_async_failure_and_expiry_never_credit(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    checkout(client, 10)
    failed = fake_stripe.last_session_id()
    fake_stripe.complete(failed, paid=False)
    webhook(client, session_event("evt_1", "checkout.session.async_payment_failed", failed))
    checkout(client, 5)
    expired = fake_stripe.last_session_id()
    fake_stripe.expire(expired)
    webhook(client, session_event("evt_2", "checkout.session.expired", expired))
    with billing.db.read_session() as s:
        statuses = dict(s.execute(select(TopUp.checkout_session_id, TopUp.status)).all())
    assert statuses == {failed: "failed", expired: "expired"}
    assert billing.balance("alice@example.com") == 0


def test_late_paid_event_after_expiry_moves_forward_to_paid(buyer, fake_stripe: FakeStripe) -> None:
    """Out of order: 'expired' processed first, but Stripe says the session was paid."""
    client, billing = buyer
    checkout(client, 5)
    session_id = fake_stripe.last_session_id()
    webhook(client, session_event("evt_exp", "checkout.session.expired", session_id))
    fake_stripe.complete(session_id)
    webhook(client, session_event("evt_done", "checkout.session.completed", session_id))
    assert topup(billing).status == "paid"
    assert billing.balance("alice@example.com") == 50_000 * CR


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body.replace("evt_", "evt_x"), headers),  # body changed
        lambda body, headers: (body, {**headers, "Stripe-Signature": "t=1,v1=deadbeef"}),
        lambda body, headers: (body, {k: v for k, v in headers.items() if k != "Stripe-Signature"}),
    ],
)
def test_tampered_or_unsigned_webhooks_are_400(buyer, fake_stripe: FakeStripe, tamper) -> None:
    client, billing = buyer
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    body, headers = signed(session_event("evt_1", "checkout.session.completed", session_id))
    body, headers = tamper(body, headers)
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 400
    assert billing.balance("alice@example.com") == 0
    assert topup(billing).status == "pending"


def test_stale_or_wrongly_keyed_signatures_are_400(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    payload = session_event("evt_1", "checkout.session.completed", session_id)
    stale = webhook(client, payload, timestamp=int(time.time()) - 600)
    wrong_key = webhook(client, payload, secret="whsec_someone_else")
    assert (stale.status_code, wrong_key.status_code) == (400, 400)
    assert billing.balance("alice@example.com") == 0


def test_webhook_is_csrf_exempt_but_not_open(buyer) -> None:
    client, _ = buyer
    response = client.post(
        "/webhooks/stripe", data="{}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400  # no signature, not a CSRF page


# --- refunds and disputes ------------------------------------------------------------------------


def _paid_topup(client: FlaskClient, fake_stripe: FakeStripe, amount: int = 25) -> str:
    checkout(client, amount)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    webhook(
        client, session_event(f"evt_paid_{session_id}", "checkout.session.completed", session_id)
    )
    return session_id


def test_partial_then_full_refund_debits_each_share_once(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    session_id = _paid_topup(client, fake_stripe)
    webhook(client, refund_event("evt_r1", session_id, 2500, 1000))  # $10 of $25
    webhook(client, refund_event("evt_r1", session_id, 2500, 1000))  # duplicate delivery
    assert billing.balance("alice@example.com") == CREDITS_25 - 100_000 * CR
    webhook(client, refund_event("evt_r2", session_id, 2500, 2500))  # now fully refunded
    webhook(client, refund_event("evt_r0", session_id, 2500, 1000))  # late, smaller: no effect
    assert billing.balance("alice@example.com") == 0
    assert billing.problems() == []
    page = client.get("/dashboard").get_data(as_text=True)
    assert "100,000.00 credits were removed: refund of $10.00 on your $25.00 top-up." in page
    assert "150,000.00 credits were removed: refund of $25.00" in page


def test_refund_of_spent_credits_goes_negative_and_flags(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    session_id = _paid_topup(client, fake_stripe, 5)
    billing.debit("u1", "alice@example.com", input_tokens=10_000_000, output_tokens=0)  # 15,000
    webhook(client, refund_event("evt_r", session_id, 500, 500))
    assert billing.balance("alice@example.com") == -15_000 * CR
    with billing.db.read_session() as s:
        assert s.scalar(select(Wallet.flagged)) is True


def test_dispute_created_then_won_recredits(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    session_id = _paid_topup(client, fake_stripe)
    webhook(
        client,
        dispute_event(
            "evt_d1", "charge.dispute.created", session_id, "dp_1", 2500, "needs_response"
        ),
    )
    assert billing.balance("alice@example.com") == 0
    webhook(
        client, dispute_event("evt_d2", "charge.dispute.closed", session_id, "dp_1", 2500, "won")
    )
    webhook(
        client, dispute_event("evt_d2", "charge.dispute.closed", session_id, "dp_1", 2500, "won")
    )
    assert billing.balance("alice@example.com") == CREDITS_25
    assert billing.problems() == []


def test_dispute_lost_keeps_the_debit(buyer, fake_stripe: FakeStripe) -> None:
    client, billing = buyer
    session_id = _paid_topup(client, fake_stripe)
    webhook(
        client,
        dispute_event(
            "evt_d1", "charge.dispute.created", session_id, "dp_1", 2500, "needs_response"
        ),
    )
    webhook(
        client, dispute_event("evt_d2", "charge.dispute.closed", session_id, "dp_1", 2500, "lost")
    )
    assert billing.balance("alice@example.com") == 0


def test_refund_before_completion_event_resolves_through_stripe(
    buyer, fake_stripe: FakeStripe
) -> None:
    """The refund arrives first: the top-up is found by asking Stripe which
    session owns the payment intent, and the final balance is the same."""
    client, billing = buyer
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    assert (
        webhook(client, refund_event("evt_r", session_id, 2500, 1000)).get_json()["outcome"]
        == "processed"
    )
    assert billing.balance("alice@example.com") == 0  # not paid yet as far as we know
    webhook(client, session_event("evt_c", "checkout.session.completed", session_id))
    assert billing.balance("alice@example.com") == CREDITS_25 - 100_000 * CR
    assert billing.problems() == []


def test_unrelated_events_are_acknowledged_and_ignored(buyer) -> None:
    client, _ = buyer
    payload = {
        "id": "evt_x",
        "object": "event",
        "type": "customer.created",
        "data": {"object": {"id": "cus_1"}},
    }
    assert webhook(client, payload).get_json()["outcome"] == "ignored"


def test_stripe_outage_during_checkout_is_503_and_leaves_a_pending_topup(
    buyer, fake_stripe: FakeStripe
) -> None:
    client, billing = buyer
    fake_stripe.down = True
    response = checkout(client, 25)
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Card payments are unavailable right now; please try again in a few minutes." in page
    assert "Stripe is down" not in page  # the provider's own text stays out of the page
    row = topup(billing)
    assert (row.status, row.checkout_session_id) == ("pending", None)
    assert billing.balance("alice@example.com") == 0
    assert len(fake_stripe.requests) == 3  # the SDK's own retries (max_network_retries=2)
