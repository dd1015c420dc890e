"""Refunds and disputes on one charge: never more clawed back than was bought,
a won dispute gives back only what it took (the rule is in core.topup_ledger).

Every order of the events is tried on a fresh top-up; the final balance and
the check of the ledger must not depend on the order.
"""

from __future__ import annotations

from itertools import permutations

import pytest
from flask import Flask
from sqlalchemy import select

from core import stripe_events
from core.models import LedgerEntry, TopUpPosting
from core.pricing import MICRO as CR
from tests.conftest import Billing
from tests.stripe_fake import FakeStripe, dispute_event, refund_event
from tests.stripe_shop import disputes, gateway, paid_topup, topup_row

C = 100_000 * CR  # a $10 top-up at 10,000 credits per USD
A = 1000  # its cents


def _events(session_id: str, tag: str, steps: tuple[tuple, ...]) -> list[dict]:
    events = []
    for n, step in enumerate(steps):
        event_id = f"evt_{tag}_{n}"
        if step[0] == "refund":
            events.append(refund_event(event_id, session_id, A, step[1]))
        else:
            _, dispute_id, kind, amount, status = step
            events.append(
                dispute_event(
                    event_id, f"charge.dispute.{kind}", session_id, f"{dispute_id}_{tag}", A, status
                )
            )
            events[-1]["data"]["object"]["amount"] = amount
    return events


# steps, final net credits of the top-up
CASES: dict[str, tuple[tuple[tuple, ...], int]] = {
    "full refund and full dispute lost": (
        (("refund", A), ("d", "dp", "created", A, "open"), ("d", "dp", "closed", A, "lost")),
        0,
    ),
    "full refund and full dispute still open": (
        (("refund", A), ("d", "dp", "created", A, "open")),
        0,
    ),
    "full refund and full dispute won": (
        (("refund", A), ("d", "dp", "created", A, "open"), ("d", "dp", "closed", A, "won")),
        0,
    ),
    "half refund, full dispute won": (
        (("refund", 500), ("d", "dp", "created", A, "open"), ("d", "dp", "closed", A, "won")),
        C // 2,
    ),
    "half refund, full dispute lost": (
        (("refund", 500), ("d", "dp", "created", A, "open"), ("d", "dp", "closed", A, "lost")),
        0,
    ),
    "30% refunded twice over, 40% disputed and lost": (
        (("refund", 200), ("refund", 300), ("d", "dp", "closed", 400, "lost")),
        C - 3 * C // 10 - 4 * C // 10,
    ),
    "two disputes, one won": (
        (("d", "dp1", "created", A, "open"), ("d", "dp2", "created", A, "open")),
        0,
    ),
    "two disputes, first won, second lost": (
        (
            ("d", "dp1", "created", A, "open"),
            ("d", "dp2", "created", 600, "open"),
            ("d", "dp1", "closed", A, "won"),
            ("d", "dp2", "closed", 600, "lost"),
        ),
        C - 6 * C // 10,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_order_of_refunds_and_disputes_ends_at_the_same_net(
    shop: Flask, fake_stripe: FakeStripe, case: str
) -> None:
    steps, net = CASES[case]
    billing = Billing(shop)
    for n, order in enumerate(permutations(range(len(steps)))):
        email = f"u{n}@example.com"
        user = billing.user(email)
        session_id = paid_topup(shop, fake_stripe, billing, user.id, 10)
        events = _events(session_id, str(n), steps)
        for i in order:
            assert stripe_events.handle_event(billing.db, gateway(shop), events[i]) == "processed"
        assert billing.balance(email) == net, (case, order)
        # Never below what the wallet had before the top-up, at any point.
        with billing.db.read_session() as s:
            lowest = s.scalar(
                select(LedgerEntry.balance_after_ucr)
                .join(TopUpPosting, TopUpPosting.ledger_entry_id == LedgerEntry.id)
                .order_by(LedgerEntry.balance_after_ucr)
                .limit(1)
            )
        assert lowest >= 0, (case, order)
    assert billing.problems() == []


def test_won_dispute_gives_back_only_what_it_took(shop: Flask, fake_stripe: FakeStripe) -> None:
    """Refunded 60 %, then disputed in full: the dispute can only take the
    other 40 %, and winning it gives back those 40 %, not 100 %."""
    billing = Billing(shop)
    user = billing.user("alice@example.com")
    session_id = paid_topup(shop, fake_stripe, billing, user.id, 10)
    steps = (("refund", 600), ("d", "dp", "created", A, "open"), ("d", "dp", "closed", A, "won"))
    refund, created, won = _events(session_id, "w", steps)
    for event in (refund, created):
        stripe_events.handle_event(billing.db, gateway(shop), event)
    [dispute] = disputes(billing, topup_row(billing, session_id).id)
    assert dispute.debited_ucr == C - 6 * C // 10
    assert billing.balance("alice@example.com") == 0
    stripe_events.handle_event(billing.db, gateway(shop), won)
    assert billing.balance("alice@example.com") == C - 6 * C // 10
    with billing.db.read_session() as s:
        [reversal] = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "reversal")).all()
    assert reversal.amount_ucr == C - 6 * C // 10
    assert billing.problems() == []


def test_refund_cut_short_by_an_open_dispute_catches_up_when_it_is_won(
    shop: Flask, fake_stripe: FakeStripe
) -> None:
    """Disputed in full first, then half refunded: the refund finds nothing
    left to take. When the dispute is won it gives back all it took, and the
    refund takes its half in the same transaction."""
    billing = Billing(shop)
    user = billing.user("alice@example.com")
    session_id = paid_topup(shop, fake_stripe, billing, user.id, 10)
    steps = (("d", "dp", "created", A, "open"), ("refund", 500), ("d", "dp", "closed", A, "won"))
    for event in _events(session_id, "c", steps)[:2]:
        stripe_events.handle_event(billing.db, gateway(shop), event)
    row = topup_row(billing, session_id)
    assert (row.refunded_cents, row.refund_debited_ucr) == (500, 0)
    assert billing.balance("alice@example.com") == 0
    stripe_events.handle_event(billing.db, gateway(shop), _events(session_id, "c", steps)[2])
    row = topup_row(billing, session_id)
    assert row.refund_debited_ucr == C // 2
    assert billing.balance("alice@example.com") == C // 2
    page_entries = [
        (e.kind, e.amount_ucr) for e in _entries(billing) if e.kind in ("reversal", "refund")
    ]
    assert page_entries == [("reversal", C), ("refund", -C // 2)]
    assert billing.problems() == []


def _entries(billing: Billing) -> list[LedgerEntry]:
    with billing.db.read_session() as s:
        return list(s.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))
