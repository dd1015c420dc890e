"""Stripe replay simulator: for many seeded permutations, the webhook events of
several top-ups (completed, async succeeded/failed, expired, refunded,
dispute created/closed) are delivered in random order with random
duplicates. Whatever the order, every top-up must end in the same state and
the wallet with exactly the expected credits.

REPLAY_PERMUTATIONS (default 150) sets how many orders are tried; REPLAY_SEED
picks the sequence, so a failure is reproducible.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from typing import Any

import pytest
from flask import Flask

from core import payments
from core.models import TopUp
from tests.conftest import Billing, make_test_app
from tests.stripe_fake import FakeStripe, dispute_event, refund_event, session_event

PERMUTATIONS = int(os.environ.get("REPLAY_PERMUTATIONS", "150"))
SEED = int(os.environ.get("REPLAY_SEED", "20261124"))
CR = 1_000_000
CREDITS_PER_DOLLAR = 10_000 * CR

# name -> (dollars, final session state, events, expected status, expected net credits)
SCENARIOS: dict[str, tuple[int, str, list[tuple], str, int]] = {
    "paid": (25, "paid", [("completed",)], "paid", 25),
    "async_ok": (10, "paid", [("completed",), ("async_payment_succeeded",)], "paid", 10),
    "async_failed": (5, "unpaid", [("completed",), ("async_payment_failed",)], "failed", 0),
    "expired": (50, "expired", [("expired",)], "expired", 0),
    "refunded": (100, "paid", [("completed",), ("refund", 4000), ("refund", 10000)], "paid", 0),
    "part_refund": (50, "paid", [("completed",), ("refund", 1250)], "paid", 50 - 12.5),
    "dispute_won": (
        25,
        "paid",
        [("completed",), ("dispute", "created"), ("dispute", "won")],
        "paid",
        25,
    ),
    "dispute_lost": (
        10,
        "paid",
        [("completed",), ("dispute", "created"), ("dispute", "lost")],
        "paid",
        0,
    ),
}


@pytest.fixture
def replay_app(db_config) -> Any:
    fake = FakeStripe()
    # NORMAL sync: this test is about ordering, not durability, and it commits a lot.
    app = make_test_app(
        db_config,
        STRIPE_SECRET_KEY="sk_test_replay",
        STRIPE_HTTP_CLIENT=fake,
        SQLITE_SYNCHRONOUS="NORMAL",
    )
    yield app, fake
    app.extensions["creditline.db"].dispose()


def _events_for(
    run: int, name: str, session_id: str, dollars: int, spec: list[tuple]
) -> list[dict]:
    events = []
    for n, step in enumerate(spec):
        event_id = f"evt_{run}_{name}_{n}"
        if step[0] == "refund":
            events.append(refund_event(event_id, session_id, dollars * 100, step[1]))
        elif step[0] == "dispute":
            kind = "charge.dispute.created" if step[1] == "created" else "charge.dispute.closed"
            status = "needs_response" if step[1] == "created" else step[1]
            events.append(
                dispute_event(event_id, kind, session_id, f"dp_{run}_{name}", dollars * 100, status)
            )
        else:
            events.append(session_event(event_id, f"checkout.session.{step[0]}", session_id))
    return events


def _run_one(
    app: Flask, fake: FakeStripe, billing: Billing, rng: random.Random, run: int
) -> Counter:
    db = billing.db
    gateway = app.extensions["creditline.stripe"]
    user = billing.user(f"replay{run}@example.com")
    deliveries: list[dict] = []
    sessions: dict[str, str] = {}
    for name, (dollars, final, spec, _, _) in SCENARIOS.items():
        payments.begin_checkout(
            db, gateway, billing.prices, user.id, dollars, "https://x/s", "https://x/c"
        )
        session_id = fake.last_session_id()
        sessions[name] = session_id
        # Stripe's view when events are processed is the session's final state.
        if final == "paid":
            fake.complete(session_id)
        elif final == "unpaid":
            fake.complete(session_id, paid=False)
        else:
            fake.expire(session_id)
        for event in _events_for(run, name, session_id, dollars, spec):
            deliveries += [event] * rng.randint(1, 3)  # Stripe may deliver several times
    rng.shuffle(deliveries)
    outcomes = Counter(payments.handle_event(db, gateway, event) for event in deliveries)

    with db.read_session() as s:
        for name, (_, _, _, status, _) in SCENARIOS.items():
            row = s.query(TopUp).filter_by(checkout_session_id=sessions[name]).one()
            assert row.status == status, (run, name, row.status)
    expected = sum(int(net * CREDITS_PER_DOLLAR) for *_, net in SCENARIOS.values())
    assert billing.balance(f"replay{run}@example.com") == expected, run
    return outcomes


@pytest.mark.slow
def test_every_order_of_events_ends_in_the_same_state(replay_app) -> None:
    app, fake = replay_app
    billing = Billing(app)
    rng = random.Random(SEED)
    totals: Counter = Counter()
    for run in range(PERMUTATIONS):
        totals += _run_one(app, fake, billing, rng, run)
    assert billing.problems() == []
    assert totals["unmatched"] == 0
    # Every run saw duplicates, and each distinct event was processed once.
    distinct = sum(len(spec) for _, _, spec, _, _ in SCENARIOS.values()) * PERMUTATIONS
    assert totals["processed"] == distinct
    assert totals["duplicate"] > 0
    print(f"replayed {PERMUTATIONS} permutations (seed {SEED}): {dict(totals)}")
