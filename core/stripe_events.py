"""Stripe webhook events, applied once each, whatever the order or concurrency.

``handle_event`` asks Stripe what it needs first (never inside a transaction),
then applies the event in one write transaction that begins by *claiming*
the event id: ``INSERT … ON CONFLICT DO NOTHING`` into ``stripe_events``. Only
that claim finding the id taken means "already processed" (``duplicate``);
on PostgreSQL a concurrent delivery of the same event waits on the first
one's uncommitted row and then sees it.

Any other unique collision (two different events for one dispute inserting
its row at the same moment, say) is a lost race, not a duplicate: the whole
transaction, claim included, is rolled back and run again
(``core.db.retry_lost_races``), and the retry sees the winner's rows. If it
still cannot be applied, the error propagates and the webhook answers 5xx,
so Stripe delivers the event again later; nothing is acknowledged unapplied.

Everything that changes a top-up locks its row first and reconciles it
(``core.payments``, ``core.topup_ledger``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.db import Database, retry_lost_races
from core.enums import DisputeStatus, TopUpStatus
from core.models import StripeEvent, TopUp, TopUpDispute
from core.payments import SessionMatch, advance, from_stripe, topup_for_session
from core.stripe_gateway import CheckoutSession, StripeGateway
from core.topup_ledger import lock_topup, reconcile

HANDLED_EVENTS = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
}


def handle_event(db: Database, gateway: StripeGateway, event: dict[str, Any]) -> str:
    """Apply one verified Stripe event. Returns what happened, for logs and tests:
    processed, duplicate, ignored, unmatched or anomaly."""
    event_id, kind = event["id"], event["type"]
    if kind not in HANDLED_EVENTS:
        return "ignored"
    with db.read_session() as s:
        if s.get(StripeEvent, event_id) is not None:
            return "duplicate"
    obj = event["data"]["object"]
    # Network first (never inside a transaction), then one transaction.
    apply: Callable[[Session], SessionMatch]
    if kind.startswith("checkout.session."):
        checkout = from_stripe(db, lambda: gateway.retrieve_session(obj["id"]))
        if checkout is None:
            apply = lambda s: SessionMatch(None)  # noqa: E731 (not a session of this account)
        else:
            apply = lambda s: _apply_session_event(s, kind, checkout)  # noqa: E731
    else:
        intent = obj.get("payment_intent")
        if isinstance(intent, dict):
            intent = intent.get("id")
        found = _session_for_intent(db, gateway, intent)
        apply = lambda s: _apply_charge_event(s, kind, obj, intent, found)  # noqa: E731

    def work(session: Session) -> str:
        if not _claim(session, event_id, kind):
            return "duplicate"
        match = apply(session)
        if match.topup is None:
            return "anomaly" if match.anomaly else "unmatched"
        session.execute(
            update(StripeEvent).where(StripeEvent.id == event_id).values(topup_id=match.topup.id)
        )
        return "processed"

    return retry_lost_races(db.write, work, IntegrityError)


def _claim(session: Session, event_id: str, kind: str) -> bool:
    """Insert the event id unless it is there; True if this transaction did."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = session.execute(
        dialect.insert(StripeEvent)
        .values(id=event_id, type=kind, received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(StripeEvent.id)
    ).first()
    return inserted is not None


def _session_for_intent(
    db: Database, gateway: StripeGateway, intent: str | None
) -> CheckoutSession | None:
    if not intent:
        return None
    with db.read_session() as s:
        if s.scalar(select(TopUp.id).where(TopUp.payment_intent_id == intent)) is not None:
            return None  # already known; no need to ask Stripe
    return from_stripe(db, lambda: gateway.session_for_payment_intent(intent))


def _apply_session_event(session: Session, kind: str, checkout: CheckoutSession) -> SessionMatch:
    match = topup_for_session(session, checkout)
    topup = match.topup
    if topup is None:
        return match
    # Stripe's current view of the session decides; the event type only
    # tells us which way a pending session went when it did not get paid.
    if checkout.paid:
        advance(topup, TopUpStatus.PAID, checkout.payment_intent)
    elif kind == "checkout.session.async_payment_failed":
        advance(topup, TopUpStatus.FAILED, checkout.payment_intent)
    elif kind == "checkout.session.expired" or checkout.status == "expired":
        advance(topup, TopUpStatus.EXPIRED)
    reconcile(session, topup)
    return match


def _apply_charge_event(
    session: Session,
    kind: str,
    obj: dict[str, Any],
    intent: str | None,
    checkout: CheckoutSession | None,
) -> SessionMatch:
    topup = lock_topup(session, TopUp.payment_intent_id == intent) if intent else None
    if topup is None:
        if checkout is None:
            return SessionMatch(None)
        match = topup_for_session(session, checkout)
        topup = match.topup
        if topup is None:
            return match
        topup.payment_intent_id = topup.payment_intent_id or intent
    if kind == "charge.refunded":
        topup.refunded_cents = max(topup.refunded_cents, int(obj.get("amount_refunded") or 0))
    else:
        _record_dispute(session, topup, obj, closed=kind == "charge.dispute.closed")
    reconcile(session, topup)
    return SessionMatch(topup)


_CLOSED = (DisputeStatus.WON, DisputeStatus.LOST)  # what a closed dispute can end as


def _record_dispute(session: Session, topup: TopUp, obj: dict[str, Any], *, closed: bool) -> None:
    outcome = obj.get("status")
    status = DisputeStatus(outcome) if closed and outcome in _CLOSED else DisputeStatus.OPEN
    dispute = session.get(TopUpDispute, obj["id"], populate_existing=True)
    if dispute is None:
        session.add(
            TopUpDispute(
                id=obj["id"],
                topup_id=topup.id,
                amount_cents=int(obj.get("amount") or 0),
                status=status,
            )
        )
        session.flush()
    elif dispute.status == DisputeStatus.OPEN and status != DisputeStatus.OPEN:
        dispute.status = status  # open -> won/lost; a closed dispute stays closed
