"""Stripe replay simulator: for many seeded permutations, the webhook events of
several top-ups (completed, async succeeded/failed, expired, cumulative
refunds, dispute created/closed, refunds and disputes on one charge) are
delivered in random order with random duplicates. Whatever the order, every
top-up must end in the same state, the wallet with exactly the expected
credits, and check_ledger clean.

Two ways of delivering:

* one after the other through ``handle_event`` (many permutations, fast);
* concurrently: four client threads released by a barrier POST the signed
  payloads to the real webhook endpoint of a live threaded server, so events
  of one top-up are applied at the same moment (on PostgreSQL, really in
  parallel; see also tests/test_stripe_concurrency.py).

REPLAY_PERMUTATIONS (default 150) and REPLAY_CONCURRENT_PERMUTATIONS (default
12) set how many orders are tried; REPLAY_SEED picks the sequence, so a
failure is reproducible (the interleaving of the concurrent run is not).
"""

from __future__ import annotations

import json
import os
import random
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from core import payments, stripe_events
from core.models import TopUp
from core.pricing import MICRO as CR
from tests.conftest import Billing, LiveServer, make_test_app
from tests.stripe_fake import (
    WEBHOOK_SECRET,
    FakeStripe,
    dispute_event,
    refund_event,
    session_event,
    signed,
)
from tests.stripe_shop import together

PERMUTATIONS = int(os.environ.get("REPLAY_PERMUTATIONS", "150"))
CONCURRENT_PERMUTATIONS = int(os.environ.get("REPLAY_CONCURRENT_PERMUTATIONS", "12"))
SEED = int(os.environ.get("REPLAY_SEED", "20261124"))
CLIENTS = 4
CREDITS_PER_DOLLAR = 10_000 * CR

# name -> (dollars, final session state, events, expected status, expected net credits)
SCENARIOS: dict[str, tuple[int, str, list[tuple], str, float]] = {
    "paid": (25, "paid", [("completed",)], "paid", 25),
    "async_ok": (10, "paid", [("completed",), ("async_payment_succeeded",)], "paid", 10),
    "async_failed": (5, "unpaid", [("completed",), ("async_payment_failed",)], "failed", 0),
    "expired": (50, "expired", [("expired",)], "expired", 0),
    "refunded": (100, "paid", [("completed",), ("refund", 4000), ("refund", 10000)], "paid", 0),
    "part_refund": (50, "paid", [("completed",), ("refund", 1250)], "paid", 50 - 12.5),
    "refund_steps": (
        10,
        "paid",
        [("completed",), ("refund", 250), ("refund", 500), ("refund", 750)],
        "paid",
        2.5,
    ),
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
    # A refund and a dispute on one charge never take back more than was bought.
    "refund_and_dispute_lost": (
        25,
        "paid",
        [("completed",), ("refund", 2500), ("dispute", "created"), ("dispute", "lost")],
        "paid",
        0,
    ),
    # Won: the dispute gives back only what it took; the $10 refund stands.
    "part_refund_dispute_won": (
        50,
        "paid",
        [("completed",), ("refund", 1000), ("dispute", "created"), ("dispute", "won")],
        "paid",
        40,
    ),
}


def _app(db_config: dict[str, Any], fake: FakeStripe) -> Flask:
    # NORMAL sync: this test is about ordering, not durability, and it commits a lot.
    return make_test_app(
        db_config,
        STRIPE_SECRET_KEY="sk_test_replay",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_HTTP_CLIENT=fake,
        SQLITE_SYNCHRONOUS="NORMAL",
    )


@pytest.fixture
def replay_app(db_config: dict[str, Any]) -> Iterator[tuple[Flask, FakeStripe]]:
    fake = FakeStripe()
    app = _app(db_config, fake)
    yield app, fake
    app.extensions["creditline.db"].dispose()


@pytest.fixture
def replay_server(db_config: dict[str, Any]) -> Iterator[tuple[LiveServer, FakeStripe]]:
    fake = FakeStripe()
    app = _app(db_config, fake)
    server = LiveServer(app).start()
    yield server, fake
    server.stop()
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


def _prepare(
    app: Flask, fake: FakeStripe, billing: Billing, rng: random.Random, run: int
) -> tuple[list[dict], dict[str, str]]:
    """Every scenario's top-up for a new user, and its events with duplicates, shuffled."""
    gateway = app.extensions["creditline.stripe"]
    user = billing.user(f"replay{run}@example.com")
    deliveries: list[dict] = []
    sessions: dict[str, str] = {}
    for name, (dollars, final, spec, _, _) in SCENARIOS.items():
        payments.begin_checkout(
            billing.db, gateway, billing.prices, user.id, dollars, "https://x/s", "https://x/c"
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
    return deliveries, sessions


def _verify(billing: Billing, run: int, sessions: dict[str, str]) -> None:
    with billing.db.read_session() as s:
        for name, (_, _, _, status, _) in SCENARIOS.items():
            row = s.query(TopUp).filter_by(checkout_session_id=sessions[name]).one()
            assert row.status == status, (run, name, row.status)
    expected = sum(int(net * CREDITS_PER_DOLLAR) for *_, net in SCENARIOS.values())
    assert billing.balance(f"replay{run}@example.com") == expected, run


def _assert_totals(totals: Counter, runs: int) -> None:
    assert totals["unmatched"] == totals["anomaly"] == 0
    # Every run saw duplicates, and each distinct event was processed once.
    distinct = sum(len(spec) for _, _, spec, _, _ in SCENARIOS.values()) * runs
    assert totals["processed"] == distinct
    assert totals["duplicate"] > 0


@pytest.mark.slow
def test_every_order_of_events_ends_in_the_same_state(replay_app) -> None:
    app, fake = replay_app
    billing = Billing(app)
    gateway = app.extensions["creditline.stripe"]
    rng = random.Random(SEED)
    totals: Counter = Counter()
    for run in range(PERMUTATIONS):
        deliveries, sessions = _prepare(app, fake, billing, rng, run)
        totals += Counter(stripe_events.handle_event(billing.db, gateway, e) for e in deliveries)
        _verify(billing, run, sessions)
    assert billing.problems() == []
    _assert_totals(totals, PERMUTATIONS)
    print(f"replayed {PERMUTATIONS} permutations (seed {SEED}): {dict(totals)}")


def _post(url: str, event: dict) -> tuple[int, str]:
    body, headers = signed(event)
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())["outcome"]


@pytest.mark.slow
def test_concurrent_deliveries_through_the_webhook_end_in_the_same_state(replay_server) -> None:
    server, fake = replay_server
    billing = Billing(server.app)
    url = server.url + "/webhooks/stripe"
    rng = random.Random(SEED + 1)
    totals: Counter = Counter()
    for run in range(CONCURRENT_PERMUTATIONS):
        deliveries, sessions = _prepare(server.app, fake, billing, rng, run)
        queues = [deliveries[n::CLIENTS] for n in range(CLIENTS)]
        answers = together([lambda q=q: [_post(url, e) for e in q] for q in queues])
        for answer in answers:
            assert isinstance(answer, list), answer  # no client saw an error
            assert {status for status, _ in answer} <= {200}
            totals += Counter(outcome for _, outcome in answer)
        _verify(billing, run, sessions)
    assert billing.problems() == []
    _assert_totals(totals, CONCURRENT_PERMUTATIONS)
    print(f"delivered {CONCURRENT_PERMUTATIONS} permutations concurrently: {dict(totals)}")
