"""Helpers for payment tests that drive ``core`` directly (no browser session):
a paid top-up in one call, and events delivered by several threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask
from sqlalchemy import select

from core import payments, stripe_events
from core.models import TopUp, TopUpDispute
from tests.conftest import Billing
from tests.stripe_fake import FakeStripe, session_event


def gateway(app: Flask) -> Any:
    return app.extensions["creditline.stripe"]


def paid_topup(app: Flask, fake: FakeStripe, billing: Billing, user_id: int, dollars: int) -> str:
    """Checkout, payment and its completion event; the session id."""
    payments.begin_checkout(
        billing.db, gateway(app), billing.prices, user_id, dollars, "https://x/s", "https://x/c"
    )
    session_id = fake.last_session_id()
    fake.complete(session_id)
    outcome = stripe_events.handle_event(
        billing.db,
        gateway(app),
        session_event(f"evt_paid_{session_id}", "checkout.session.completed", session_id),
    )
    assert outcome == "processed"
    return session_id


def together(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run each call on its own thread, all released at once by a barrier.
    Returns results in order (an exception is returned, not raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = calls[n]()
        except Exception as exc:  # reported to the test, which asserts on it
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def deliver_together(app: Flask, billing: Billing, events: Sequence[dict]) -> list[Any]:
    """``handle_event`` for each event, on its own thread and DB connection."""
    return together(
        [
            lambda event=event: stripe_events.handle_event(billing.db, gateway(app), event)
            for event in events
        ]
    )


def topup_row(billing: Billing, session_id: str) -> TopUp:
    with billing.db.read_session() as s:
        return s.scalars(select(TopUp).where(TopUp.checkout_session_id == session_id)).one()


def disputes(billing: Billing, topup_id: int) -> list[TopUpDispute]:
    with billing.db.read_session() as s:
        return list(s.scalars(select(TopUpDispute).where(TopUpDispute.topup_id == topup_id)))
