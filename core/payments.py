"""Card top-ups through Stripe Checkout, following Stripe's fulfilment guidance.

Flow
----
1. ``begin_checkout``: store a *pending* top-up (cents, credits quoted at the
   current rate, the rate used) in its own transaction, then create the
   Checkout Session (mode ``payment``, ``price_data`` in cents, ``usd``,
   ``client_reference_id`` = user id, metadata with the top-up id) with the
   top-up id as idempotency key, then store the session id. Stripe is never
   called inside a database transaction.
2. ``fulfil(session_id)`` serves both the webhook and the success page: it
   retrieves the session from Stripe and credits only when
   ``payment_status == "paid"``. Idempotent.
3. ``handle_event`` processes webhook events, deduplicated by event id (the
   ``stripe_events`` primary key, inserted in the same transaction as the
   effect).

Order independence
------------------
Stripe delivers events duplicated and out of order. Every event only moves
state forward (status rank pending < failed/expired < paid; refunded cents
is the largest cumulative amount seen; a dispute goes open -> won/lost), and
then ``reconcile`` posts ledger entries for the difference between what the
state says the wallet should have received and what has been posted. So the
final balance is the same whatever order the events came in. A top-up credits
exactly the credits quoted when it was created, whatever the rate is now.

Refunds and disputes debit the refunded / disputed share of the credits
(``credits * cents // amount``), once; they may take the balance below zero,
in which case the wallet is flagged for an admin. A won dispute re-credits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.db import Database
from core.errors import DomainError, ValidationError
from core.ledger import post_entry
from core.models import Notification, StripeEvent, TopUp, TopUpDispute, Wallet
from core.pricebook import PriceBook, PriceBookCache
from core.pricing import credits_for_cents, format_cents, format_credits_display

STATUS_RANK = {"pending": 0, "failed": 1, "expired": 1, "paid": 2}
HANDLED_EVENTS = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
}


class PaymentsNotConfigured(DomainError):
    code = "payments_not_configured"


class PaymentProviderError(DomainError):
    """Stripe could not be reached or refused the request."""

    code = "payment_provider_error"


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str | None
    payment_status: str
    status: str | None
    payment_intent: str | None
    topup_id: int | None


def _session_from(obj: Any) -> CheckoutSession:
    data = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    metadata = data.get("metadata") or {}
    topup_id = metadata.get("topup_id")
    intent = data.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    return CheckoutSession(
        id=data["id"],
        url=data.get("url"),
        payment_status=data.get("payment_status") or "unpaid",
        status=data.get("status"),
        payment_intent=intent,
        topup_id=int(topup_id) if topup_id and str(topup_id).isdigit() else None,
    )


class StripeGateway:
    """The few Stripe calls Creditline makes, through the official SDK."""

    def __init__(
        self,
        secret_key: str | None,
        *,
        api_base: str | None = None,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        self.configured = bool(secret_key)
        self._client: stripe.StripeClient | None = None
        if secret_key:
            kwargs: dict[str, Any] = {"max_network_retries": 2}
            if api_base:
                kwargs["base_addresses"] = {"api": api_base}
            if http_client is not None:
                kwargs["http_client"] = http_client
            self._client = stripe.StripeClient(secret_key, **kwargs)

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            raise PaymentsNotConfigured("Card payments are not configured.")
        return self._client

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except stripe.StripeError as exc:
            raise PaymentProviderError(f"Stripe: {exc.user_message or exc}") from exc

    def create_session(self, topup: TopUp, success_url: str, cancel_url: str) -> CheckoutSession:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": topup.amount_cents,
                        "product_data": {
                            "name": f"{topup.credits_ucr // 1_000_000:,} Creditline credits"
                        },
                    },
                }
            ],
            "client_reference_id": str(topup.user_id),
            "metadata": {"topup_id": str(topup.id)},
            # So charges (refunds, disputes) lead back to the top-up too.
            "payment_intent_data": {"metadata": {"topup_id": str(topup.id)}},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        options = {"idempotency_key": f"creditline-topup-{topup.id}"}
        return _session_from(
            self._call(lambda: self.client.v1.checkout.sessions.create(params, options))
        )

    def retrieve_session(self, session_id: str) -> CheckoutSession:
        return _session_from(
            self._call(lambda: self.client.v1.checkout.sessions.retrieve(session_id))
        )

    def session_for_payment_intent(self, payment_intent: str) -> CheckoutSession | None:
        found = self._call(
            lambda: self.client.v1.checkout.sessions.list(
                {"payment_intent": payment_intent, "limit": 1}
            )
        )
        data = found.to_dict()["data"] if hasattr(found, "to_dict") else found["data"]
        return _session_from(data[0]) if data else None


# --- top-ups ---------------------------------------------------------------------


def _check_offered(book: PriceBook, amount_usd: int) -> None:
    if amount_usd not in book.settings.topup_options_usd:
        raise ValidationError("Choose one of the top-up amounts offered.", field="amount_usd")


def start_topup(db: Database, prices: PriceBookCache, user_id: int, amount_usd: int) -> TopUp:
    """A pending top-up quoting the credits ``amount_usd`` buys right now."""
    with db.write() as session:
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
            status="pending",
        )
        session.add(topup)
        session.flush()
        return topup


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
    topup = start_topup(db, prices, user_id, amount_usd)
    checkout = gateway.create_session(topup, success_url, cancel_url)  # outside any transaction
    with db.write() as session:
        session.execute(
            update(TopUp)
            .where(TopUp.id == topup.id)
            .values(checkout_session_id=checkout.id, checkout_url=checkout.url)
        )
    if not checkout.url:
        raise PaymentProviderError("Stripe returned no Checkout URL.")
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
    it is paid. Safe to call any number of times; None for an unknown session."""
    checkout = gateway.retrieve_session(session_id)
    with db.write() as session:
        topup = _topup_for_session(session, checkout)
        if topup is None:
            return None
        before = topup.credited_ucr
        if checkout.payment_status in ("paid", "no_payment_required"):
            _advance(topup, "paid", checkout.payment_intent)
        reconcile(session, topup)
        return FulfilResult(
            topup.id, topup.user_id, topup.status, topup.credits_ucr, topup.credited_ucr > before
        )


def _topup_for_session(session: Session, checkout: CheckoutSession) -> TopUp | None:
    topup = session.scalar(select(TopUp).where(TopUp.checkout_session_id == checkout.id))
    if topup is None and checkout.topup_id is not None:
        # The webhook can beat begin_checkout's second transaction.
        topup = session.get(TopUp, checkout.topup_id)
        if topup is not None and topup.checkout_session_id is None:
            topup.checkout_session_id = checkout.id
    return topup


def _advance(topup: TopUp, status: str, payment_intent: str | None = None) -> None:
    """Move the status forward only; never back."""
    if STATUS_RANK[status] > STATUS_RANK[topup.status]:
        topup.status = status
        if status == "paid":
            topup.paid_at = utcnow()
    if payment_intent and not topup.payment_intent_id:
        topup.payment_intent_id = payment_intent


# --- the ledger side ----------------------------------------------------------------


def reconcile(session: Session, topup: TopUp) -> None:
    """Post what the top-up's state says is owed and has not been posted yet."""
    paid = topup.status == "paid"
    credits = topup.credits_ucr
    if paid and topup.credited_ucr < credits:
        post_entry(
            session,
            topup.wallet_id,
            credits - topup.credited_ucr,
            "topup",
            reference=f"topup:{topup.checkout_session_id or topup.id}",
            memo=f"${topup.amount_cents // 100} top-up",
            credits_per_usd=topup.credits_per_usd,
        )
        topup.credited_ucr = credits

    refunded = min(topup.refunded_cents, topup.amount_cents)
    refund_target = credits * refunded // topup.amount_cents if paid else 0
    if refund_target > topup.refund_debited_ucr:
        _debit(
            session,
            topup,
            refund_target - topup.refund_debited_ucr,
            "refund",
            f"refund:{topup.id}:{refunded}",
            f"refund of {format_cents(refunded)}",
        )
        topup.refund_debited_ucr = refund_target

    for dispute in session.scalars(select(TopUpDispute).where(TopUpDispute.topup_id == topup.id)):
        share = credits * min(dispute.amount_cents, topup.amount_cents) // topup.amount_cents
        target = share if paid and dispute.status != "won" else 0
        if target > dispute.debited_ucr:
            _debit(
                session,
                topup,
                target - dispute.debited_ucr,
                "dispute",
                f"dispute:{dispute.id}",
                "card dispute",
            )
            dispute.debited_ucr = target
        elif target < dispute.debited_ucr:
            post_entry(
                session,
                topup.wallet_id,
                dispute.debited_ucr - target,
                "reversal",
                reference=f"dispute-won:{dispute.id}",
                memo="card dispute won",
            )
            dispute.debited_ucr = target
    session.flush()


def _debit(
    session: Session, topup: TopUp, amount: int, kind: str, reference: str, memo: str
) -> None:
    posting = post_entry(session, topup.wallet_id, -amount, kind, reference=reference, memo=memo)
    if posting is None or posting.duplicate:
        return
    session.add(
        Notification(
            user_id=topup.user_id,
            kind=kind,
            message=(
                f"{format_credits_display(amount)} credits were removed: {memo} "
                f"on your {format_cents(topup.amount_cents)} top-up."
            ),
        )
    )
    if posting.balance_ucr < 0:
        # Credits already spent were refunded or disputed: an admin should look.
        session.execute(update(Wallet).where(Wallet.id == topup.wallet_id).values(flagged=True))


# --- webhooks --------------------------------------------------------------------------


def handle_event(db: Database, gateway: StripeGateway, event: dict[str, Any]) -> str:
    """Apply one verified Stripe event. Returns what happened, for logs and tests."""
    event_id, kind = event["id"], event["type"]
    if kind not in HANDLED_EVENTS:
        return "ignored"
    with db.read_session() as s:
        if s.get(StripeEvent, event_id) is not None:
            return "duplicate"
    obj = event["data"]["object"]
    # Network first (never inside a transaction), then one transaction.
    if kind.startswith("checkout.session."):
        checkout = gateway.retrieve_session(obj["id"])
        apply = lambda s: _apply_session_event(s, kind, checkout)  # noqa: E731
    else:
        intent = obj.get("payment_intent")
        if isinstance(intent, dict):
            intent = intent.get("id")
        checkout = _session_for_intent(db, gateway, intent)
        apply = lambda s: _apply_charge_event(s, kind, obj, intent, checkout)  # noqa: E731
    try:
        with db.write() as session:
            session.add(StripeEvent(id=event_id, type=kind))
            session.flush()  # a concurrent delivery of this event fails here
            topup = apply(session)
            if topup is None:
                return "unmatched"
            session.execute(
                update(StripeEvent).where(StripeEvent.id == event_id).values(topup_id=topup.id)
            )
            return "processed"
    except IntegrityError:
        return "duplicate"


def _session_for_intent(
    db: Database, gateway: StripeGateway, intent: str | None
) -> CheckoutSession | None:
    if not intent:
        return None
    with db.read_session() as s:
        if s.scalar(select(TopUp.id).where(TopUp.payment_intent_id == intent)) is not None:
            return None  # already known; no need to ask Stripe
    return gateway.session_for_payment_intent(intent)


def _apply_session_event(session: Session, kind: str, checkout: CheckoutSession) -> TopUp | None:
    topup = _topup_for_session(session, checkout)
    if topup is None:
        return None
    # Stripe's current view of the session decides; the event type only
    # tells us which way a pending session went when it did not get paid.
    if checkout.payment_status in ("paid", "no_payment_required"):
        _advance(topup, "paid", checkout.payment_intent)
    elif kind == "checkout.session.async_payment_failed":
        _advance(topup, "failed", checkout.payment_intent)
    elif kind == "checkout.session.expired" or checkout.status == "expired":
        _advance(topup, "expired")
    reconcile(session, topup)
    return topup


def _apply_charge_event(
    session: Session,
    kind: str,
    obj: dict[str, Any],
    intent: str | None,
    checkout: CheckoutSession | None,
) -> TopUp | None:
    topup = (
        session.scalar(select(TopUp).where(TopUp.payment_intent_id == intent)) if intent else None
    )
    if topup is None and checkout is not None:
        topup = _topup_for_session(session, checkout)
        if topup is not None:
            topup.payment_intent_id = intent
    if topup is None:
        return None
    if kind == "charge.refunded":
        topup.refunded_cents = max(topup.refunded_cents, int(obj.get("amount_refunded") or 0))
    else:
        _record_dispute(session, topup, obj, closed=kind == "charge.dispute.closed")
    reconcile(session, topup)
    return topup


def _record_dispute(session: Session, topup: TopUp, obj: dict[str, Any], *, closed: bool) -> None:
    outcome = obj.get("status")
    status = outcome if closed and outcome in ("won", "lost") else "open"
    dispute = session.get(TopUpDispute, obj["id"])
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
    elif dispute.status == "open" and status != "open":
        dispute.status = status  # open -> won/lost; a closed dispute stays closed
