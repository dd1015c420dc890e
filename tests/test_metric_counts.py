"""Counters of /metrics, read with prometheus_client's parser: each counts a
committed change of state once, whichever path made it (gateway or chat,
success page or webhook, a lazy expiry or the sweep), and never a rolled-back
attempt or a duplicate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core import audit, hold_queries, holds
from core.clock import utcnow
from core.errors import InsufficientCredits
from core.pricing import MICRO
from tests.conftest import AuthActions, Billing, checkout
from tests.dify_setup import events_url, read_events, register_app, send
from tests.dify_standin import DifyStandIn
from tests.hold_helpers import request_for, take, wallet
from tests.metrics_reader import Samples, delta, hold_deltas, parse
from tests.stripe_fake import FakeStripe, session_event, webhook

ALICE = "alice@example.com"


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


def _take_then_fail(billing: Billing, request: holds.HoldRequest) -> None:
    """A hold taken in a transaction that then rolls back."""
    with billing.db.raw_write() as cur:
        hold = holds.take(cur, request, utcnow())
        raise RuntimeError(f"rolled back with hold {hold.id}")


def test_holds_count_each_change_once_and_no_duplicate_or_rollback(
    client: FlaskClient, billing: Billing
) -> None:
    billing.user(ALICE, 100 * MICRO)
    request = request_for(billing, ALICE)
    before = scrape(client)
    first, second = take(billing, request), take(billing, request)
    with billing.db.raw_write() as cur:
        holds.settle(cur, first, 100, 50, utcnow())
    with billing.db.raw_write() as cur:  # the same hold again: changes nothing
        assert holds.settle(cur, first, 100, 50, utcnow()).duplicate
    with billing.db.raw_write() as cur:
        assert holds.release(cur, second, "test", utcnow())
    with billing.db.raw_write() as cur:
        assert not holds.release(cur, second, "test", utcnow())
        assert not holds.release_by_id(cur, second.id, "test", utcnow())
    with pytest.raises(RuntimeError):
        _take_then_fail(billing, request)
    with pytest.raises(InsufficientCredits):
        take(billing, request_for(billing, ALICE, tokens=(10**9, 0)))
    after = scrape(client)
    assert hold_deltas(before, after) == {"taken": 2, "settled": 1, "released": 1, "expired": 0}
    assert wallet(billing, ALICE)[1] == 0 and billing.problems() == []


def test_an_overdue_hold_expired_by_the_wallets_next_hold_is_counted(
    client: FlaskClient, billing: Billing
) -> None:
    billing.user(ALICE, 100 * MICRO)
    request = request_for(billing, ALICE, ttl=timedelta(minutes=1))
    start = utcnow()
    with billing.db.raw_write() as cur:
        holds.take(cur, request, start)
    before = scrape(client)
    with billing.db.raw_write() as cur:  # the next hold, past the first one's expiry
        holds.take(cur, request, start + timedelta(minutes=2))
    after = scrape(client)
    assert hold_deltas(before, after) == {"taken": 1, "settled": 0, "released": 0, "expired": 1}


def test_the_sweep_and_an_admins_release_are_counted(app: Flask, billing: Billing) -> None:
    client = app.test_client()
    billing.user(ALICE, 100 * MICRO)
    billing.user("bob@example.com", 100 * MICRO)
    kept = take(billing, request_for(billing, ALICE))
    take(billing, request_for(billing, "bob@example.com", ttl=timedelta(seconds=-1)))
    before = scrape(client)
    result = app.test_cli_runner().invoke(args=["release-expired-holds"])
    assert result.output == "released 1 expired hold(s)\n"
    hold_queries.release(billing.db, audit.CLI, kept.id, "stuck call")
    after = scrape(client)
    assert hold_deltas(before, after) == {"taken": 0, "settled": 0, "released": 1, "expired": 1}


def test_a_chat_turns_hold_is_counted_like_a_gateway_calls(
    app: Flask, client: FlaskClient, billing: Billing, auth: AuthActions
) -> None:
    with DifyStandIn() as dify:
        register_app(app, billing, dify.url)
        billing.user(ALICE, 100 * MICRO)
        auth.login(ALICE)
        before = scrape(client)
        status, fragment = send(client, "How do I reset my password?")
        assert status == 200
        taken = scrape(client)
        names = [name for name, _ in read_events(client, events_url(fragment))]
        assert names[-1] == "end"
        after = scrape(client)
    assert hold_deltas(before, taken) == {"taken": 1, "settled": 0, "released": 0, "expired": 0}
    assert hold_deltas(taken, after) == {"taken": 0, "settled": 1, "released": 0, "expired": 0}


def paid_checkout(client: FlaskClient, fake_stripe: FakeStripe) -> str:
    """A $25 checkout the stand-in Stripe has marked paid; its session id."""
    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    return session_id


def test_a_top_up_credited_by_the_webhook_is_counted_once(
    buyer: tuple[FlaskClient, Billing], fake_stripe: FakeStripe
) -> None:
    client, billing = buyer
    session_id = paid_checkout(client, fake_stripe)
    before = scrape(client)
    payload = session_event("evt_paid", "checkout.session.completed", session_id)
    assert webhook(client, payload).get_json()["outcome"] == "processed"
    paid = scrape(client)
    assert webhook(client, payload).get_json()["outcome"] == "duplicate"
    again = session_event("evt_paid_again", "checkout.session.async_payment_succeeded", session_id)
    assert webhook(client, again).get_json()["outcome"] == "processed"  # nothing left to credit
    assert client.get(f"/pricing/success?session_id={session_id}").status_code == 200
    after = scrape(client)
    assert delta(before, paid, "creditline_topups_total") == 1
    assert delta(paid, after, "creditline_topups_total") == 0
    assert billing.problems() == []


def test_a_top_up_credited_by_the_success_page_is_counted_once(
    buyer: tuple[FlaskClient, Billing], fake_stripe: FakeStripe
) -> None:
    client, _ = buyer
    session_id = paid_checkout(client, fake_stripe)
    before = scrape(client)
    for _ in range(2):
        assert client.get(f"/pricing/success?session_id={session_id}").status_code == 200
    after = scrape(client)
    assert delta(before, after, "creditline_topups_total") == 1
