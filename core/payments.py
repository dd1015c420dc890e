"""Card top-ups through Stripe Checkout, following Stripe's fulfilment guidance.

Flow
----
1. ``begin_checkout``: store a *pending* top-up (cents, credits quoted at the
   current rate, the rate used) in its own transaction, then create the
   Checkout Session (mode ``payment``, ``price_data`` in cents, ``usd``,
   ``client_reference_id`` = user id, metadata with the top-up id) with the
   top-up id as idempotency key, then store the session id. Stripe is never
   called inside a database transaction.
2. ``fulfil(session_id)`` serves the success page (and ``core.stripe_events``
   the webhooks): it retrieves the session from Stripe and credits only when
   it is paid. Idempotent.

Which top-up a session pays for
-------------------------------
A session's metadata is only a claim. ``topup_for_session`` accepts:

* the top-up that stored this session id (begin_checkout's), or
* when the webhook beats that store, the top-up the metadata names if it has
  no session yet and the session's ``client_reference_id`` is that top-up's
  user;

and in both cases only if the session's ``amount_total`` and ``currency``
are the quote's (cents, ``usd``). Anything else is recorded for the admins
(``core.payment_anomalies``) and credits nothing.

Order independence
------------------
Stripe delivers events duplicated, out of order and at the same moment.
Everything that changes one top-up runs with its row locked
(``core.topup_ledger.lock_topup``), every event only moves state forward
(status rank pending < failed/expired < paid; refunded cents is the largest
cumulative amount seen; a dispute goes open -> won/lost), and then
``core.topup_ledger.reconcile`` posts what the state says is owed and has not
been posted yet. So the final balance is the same whatever the order or
concurrency. A top-up credits exactly the credits quoted when it was
created, whatever the rate is now. The claw-back rule for refunds and
disputes is in ``core.topup_ledger``.

Stripe failures reach users as one short sentence
(``core.stripe_gateway.UNAVAILABLE``); the details go to the log and to the
admins' anomaly list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import payment_anomalies
from core.clock import utcnow
from core.db import Database, retry_lost_races
from core.enums import AnomalyCode, TopUpStatus
from core.errors import ValidationError
from core.models import TopUp, Wallet
from core.pricebook import PriceBook, PriceBookCache
from core.pricing import credits_for_cents, format_cents
from core.stripe_gateway import (
    CheckoutSession,
    PaymentProviderError,
    PaymentsNotConfigured,
    StripeGateway,
)
from core.topup_ledger import lock_topup, reconcile

T = TypeVar("T")
STATUS_RANK = {
    TopUpStatus.PENDING: 0,
    TopUpStatus.FAILED: 1,
    TopUpStatus.EXPIRED: 1,
    TopUpStatus.PAID: 2,
}
CURRENCY = "usd"


def _check_offered(book: PriceBook, amount_usd: int) -> None:
    if amount_usd not in book.settings.topup_options_usd:
        raise ValidationError("Choose one of the top-up amounts offered.", field="amount_usd")


def start_topup(session: Session, prices: PriceBookCache, user_id: int, amount_usd: int) -> TopUp:
    """A pending top-up quoting the credits ``amount_usd`` buys right now, in
    the caller's transaction (which commits it before Stripe is called)."""
    book = prices.get(session)
    _check_offered(book, amount_usd)
    wallet_id = session.scalar(select(Wallet.id).where(Wallet.user_id == user_id))
    topup = TopUp(
        user_id=user_id,
        wallet_id=wallet_id,
        amount_cents=amount_usd * 100,
        credits_ucr=credits_for_cents(amount_usd * 100, book.credits_per_usd),
        credits_per_usd=book.credits_per_usd,
        rate_version_id=book.rate_version_id,
        status=TopUpStatus.PENDING,
    )
    session.add(topup)
    session.flush()
    return topup


def from_stripe(
    db: Database,
    call: Callable[[], T],
    *,
    topup_id: int | None = None,
    user_id: int | None = None,
) -> T:
    """Run a gateway call; if Stripe fails, record it for the admins (the
    gateway has logged it) and re-raise for the caller's short message."""
    try:
        return call()
    except PaymentProviderError as exc:
        with db.write() as session:
            payment_anomalies.record(
                session, AnomalyCode.PROVIDER_ERROR, exc.detail, topup_id=topup_id, user_id=user_id
            )
        raise


def begin_checkout(
    db: Database,
    gateway: StripeGateway,
    prices: PriceBookCache,
    user_id: int,
    amount_usd: int,
    success_url: str,
    cancel_url: str,
) -> str:
    """Pending top-up, then the Checkout Session; returns the URL to send the user to."""
    # A bad amount is the caller's error even where payments are not set up.
    with db.read_session() as session:
        _check_offered(prices.get(session), amount_usd)
    if not gateway.configured:
        raise PaymentsNotConfigured("Card payments are not configured.")
    with db.write() as session:
        topup = start_topup(session, prices, user_id, amount_usd)
    checkout = from_stripe(  # outside any transaction
        db,
        lambda: gateway.create_session(topup, success_url, cancel_url),
        topup_id=topup.id,
        user_id=user_id,
    )
    with db.write() as session:
        session.execute(
            update(TopUp)
            .where(
                TopUp.id == topup.id,
                # Never re-bind a top-up a webhook already bound to its session.
                or_(TopUp.checkout_session_id.is_(None), TopUp.checkout_session_id == checkout.id),
            )
            .values(checkout_session_id=checkout.id, checkout_url=checkout.url)
        )
    if not checkout.url:
        raise PaymentProviderError(f"Stripe returned no Checkout URL for {checkout.id}.")
    return checkout.url


@dataclass(frozen=True)
class FulfilResult:
    topup_id: int
    user_id: int
    status: str
    credits_ucr: int
    credited_now: bool


def fulfil(db: Database, gateway: StripeGateway, session_id: str) -> FulfilResult | None:
    """Credit the top-up behind a Checkout Session if, and only if, Stripe says
    it is paid and it is that top-up's session. Safe to call any number of
    times; None for an unknown or anomalous session."""
    checkout = from_stripe(db, lambda: gateway.retrieve_session(session_id))
    if checkout is None:
        return None

    def work(session: Session) -> FulfilResult | None:
        assert checkout is not None
        match = topup_for_session(session, checkout)
        topup = match.topup
        if topup is None:
            return None
        before = topup.credited_ucr
        if checkout.paid:
            advance(topup, TopUpStatus.PAID, checkout.payment_intent)
        reconcile(session, topup)
        return FulfilResult(
            topup.id, topup.user_id, topup.status, topup.credits_ucr, topup.credited_ucr > before
        )

    return retry_lost_races(db.write, work, IntegrityError)


@dataclass(frozen=True)
class SessionMatch:
    topup: TopUp | None  # locked for this transaction
    anomaly: bool = False


def topup_for_session(session: Session, checkout: CheckoutSession) -> SessionMatch:
    """The top-up this session may pay for, locked; see the module docstring."""
    topup = lock_topup(session, TopUp.checkout_session_id == checkout.id)
    if topup is None:
        if checkout.topup_id is None:
            return SessionMatch(None)
        topup = lock_topup(session, TopUp.id == checkout.topup_id)
        if topup is None:
            return SessionMatch(None)
        problem = None
        if topup.checkout_session_id is not None:
            problem = f"it belongs to session {topup.checkout_session_id}"
        elif checkout.client_reference_id != str(topup.user_id):
            problem = (
                f"it is user {topup.user_id}'s, but the session is for "
                f"client_reference_id {checkout.client_reference_id!r}"
            )
        if problem:
            return _anomaly(
                session,
                AnomalyCode.SESSION_MISMATCH,
                checkout,
                topup,
                f"Session {checkout.id} ({checkout.payment_status}) names top-up "
                f"{topup.id}, but {problem}. Nothing was credited.",
            )
    if checkout.amount_total != topup.amount_cents or checkout.currency != CURRENCY:
        return _anomaly(
            session,
            AnomalyCode.AMOUNT_MISMATCH,
            checkout,
            topup,
            f"Session {checkout.id} ({checkout.payment_status}) is for "
            f"{checkout.amount_total} {checkout.currency}, but top-up {topup.id} quoted "
            f"{format_cents(topup.amount_cents)} ({topup.amount_cents} {CURRENCY}). "
            "Nothing was credited.",
        )
    if topup.checkout_session_id is None:  # the webhook beat begin_checkout's store
        topup.checkout_session_id = checkout.id
    return SessionMatch(topup)


def _anomaly(
    session: Session, code: str, checkout: CheckoutSession, topup: TopUp, message: str
) -> SessionMatch:
    payment_anomalies.record(
        session, code, message, reference=checkout.id, topup_id=topup.id, user_id=topup.user_id
    )
    return SessionMatch(None, anomaly=True)


def advance(topup: TopUp, status: TopUpStatus, payment_intent: str | None = None) -> None:
    """Move the status forward only; never back."""
    if STATUS_RANK[status] > STATUS_RANK[topup.status]:
        topup.status = status
        if status == TopUpStatus.PAID:
            topup.paid_at = utcnow()
    if payment_intent and not topup.payment_intent_id:
        topup.payment_intent_id = payment_intent
