"""Stripe events for one top-up arriving at the same moment.

Threads are released together by a barrier and each calls ``handle_event``
with its own database connection. On PostgreSQL the transactions really
overlap, and only the top-up's row lock keeps them from each reading the same
"posted so far" (without it, the refund test fails: 75 % debited for a 50 %
refund, balances far below zero). On SQLite BEGIN IMMEDIATE under the writer
lock serialises them; the same tests verify that.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from core import stripe_events
from core.models import StripeEvent, TopUpDispute
from core.pricing import MICRO as CR
from tests.conftest import USING_PG, Billing, wait_until_blocked
from tests.stripe_fake import FakeStripe, dispute_event, refund_event, session_event
from tests.stripe_shop import (
    deliver_together,
    disputes,
    gateway,
    paid_topup,
    together,
    topup_row,
)

CREDITS_10 = 100_000 * CR  # $10 at 10,000 credits per USD
ROUNDS = 6


@pytest.mark.parametrize("refunds", [(500, 250), (250, 500, 750, 1000), (1000, 1000, 400)])
def test_concurrent_cumulative_refunds_debit_the_largest_once(
    shop: Flask, fake_stripe: FakeStripe, refunds: tuple[int, ...]
) -> None:
    billing = Billing(shop)
    user = billing.user("alice@example.com")
    for round_ in range(ROUNDS):
        session_id = paid_topup(shop, fake_stripe, billing, user.id, 10)
        events = [
            refund_event(f"evt_r{round_}_{n}", session_id, 1000, cents)
            for n, cents in enumerate(refunds)
        ]
        assert deliver_together(shop, billing, events) == ["processed"] * len(refunds)
        row = topup_row(billing, session_id)
        assert row.refunded_cents == max(refunds)
        assert row.refund_debited_ucr == CREDITS_10 * max(refunds) // 1000
    largest = CREDITS_10 * max(refunds) // 1000
    assert billing.balance("alice@example.com") == ROUNDS * (CREDITS_10 - largest)
    assert billing.problems() == []


def test_concurrent_dispute_created_and_won_end_won(shop: Flask, fake_stripe: FakeStripe) -> None:
    billing = Billing(shop)
    user = billing.user("alice@example.com")
    for round_ in range(ROUNDS):
        session_id = paid_topup(shop, fake_stripe, billing, user.id, 10)
        dispute_id = f"dp_{round_}"
        events = [
            dispute_event(
                f"evt_dc{round_}", "charge.dispute.created", session_id, dispute_id, 1000, "open"
            ),
            dispute_event(
                f"evt_dw{round_}", "charge.dispute.closed", session_id, dispute_id, 1000, "won"
            ),
        ]
        assert deliver_together(shop, billing, events) == ["processed", "processed"]
        [dispute] = disputes(billing, topup_row(billing, session_id).id)
        assert (dispute.status, dispute.debited_ucr) == ("won", 0)
    assert billing.balance("alice@example.com") == ROUNDS * CREDITS_10
    assert billing.problems() == []


def test_one_event_delivered_four_times_at_once_is_processed_once(
    shop: Flask, fake_stripe: FakeStripe
) -> None:
    billing = Billing(shop)
    user = billing.user("alice@example.com")
    for round_ in range(ROUNDS):
        session_id = paid_topup(shop, fake_stripe, billing, user.id, 10)
        event = refund_event(f"evt_same{round_}", session_id, 1000, 300)
        outcomes = deliver_together(shop, billing, [event] * 4)
        assert sorted(outcomes) == ["duplicate"] * 3 + ["processed"]
    assert billing.balance("alice@example.com") == ROUNDS * (CREDITS_10 - CREDITS_10 * 3 // 10)
    assert billing.problems() == []


def test_completion_and_success_page_at_once_credit_once(
    shop: Flask, fake_stripe: FakeStripe
) -> None:
    from core import payments

    billing = Billing(shop)
    db, stripe = billing.db, gateway(shop)
    user = billing.user("alice@example.com")
    for round_ in range(ROUNDS):
        payments.begin_checkout(
            billing.db, gateway(shop), billing.prices, user.id, 10, "https://x/s", "https://x/c"
        )
        session_id = fake_stripe.last_session_id()
        fake_stripe.complete(session_id)
        completed = session_event(f"evt_c{round_}", "checkout.session.completed", session_id)
        succeeded = session_event(
            f"evt_s{round_}", "checkout.session.async_payment_succeeded", session_id
        )
        results = together(
            [
                lambda event=completed: stripe_events.handle_event(db, stripe, event),
                lambda event=succeeded: stripe_events.handle_event(db, stripe, event),
                lambda session_id=session_id: payments.fulfil(db, stripe, session_id),
            ]
        )
        assert results[:2] == ["processed", "processed"]
        assert results[2].status == "paid"
    assert billing.balance("alice@example.com") == ROUNDS * CREDITS_10
    assert billing.problems() == []


def test_a_lost_unique_race_is_retried_not_answered_duplicate(
    shop: Flask, fake_stripe: FakeStripe
) -> None:
    """The "won" of a dispute whose row another transaction is inserting.

    Transaction A has inserted the dispute's row but not committed when
    ``dispute.closed`` (won) is applied. On PostgreSQL the event's insert of
    the same dispute waits on A's, then loses with a unique violation: that is
    not "already processed" (only the event id's own uniqueness is), so the
    transaction runs again, finds A's row, and applies the "won". Answering
    "duplicate" would drop the event for good (Stripe does not resend an event
    it got a 200 for). On SQLite the event waits for the writer lock instead.
    """
    billing = Billing(shop)
    user = billing.user("alice@example.com")
    session_id = paid_topup(shop, fake_stripe, billing, user.id, 10)
    topup_id = topup_row(billing, session_id).id
    won = dispute_event("evt_won", "charge.dispute.closed", session_id, "dp_race", 1000, "won")
    answer: dict[str, Any] = {}

    def deliver() -> None:
        try:
            answer["outcome"] = stripe_events.handle_event(billing.db, gateway(shop), won)
        except Exception as exc:
            answer["outcome"] = exc

    b = threading.Thread(target=deliver)
    with billing.db.write() as session_a:
        session_a.add(
            TopUpDispute(id="dp_race", topup_id=topup_id, amount_cents=1000, status="open")
        )
        session_a.flush()
        b.start()
        if USING_PG:
            wait_until_blocked(
                billing.db.engine, "the event's transaction never blocked on the other's insert"
            )
    b.join(timeout=30)
    assert answer["outcome"] == "processed"
    [dispute] = disputes(billing, topup_id)
    assert dispute.status == "won"
    with billing.db.read_session() as s:
        assert s.scalar(select(StripeEvent.topup_id).where(StripeEvent.id == "evt_won")) == topup_id
    assert billing.balance("alice@example.com") == CREDITS_10
    assert billing.problems() == []
