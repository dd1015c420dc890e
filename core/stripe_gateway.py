"""The few Stripe calls Creditline makes, through the official SDK.

``StripeGateway`` is the only code that talks to Stripe. It answers with
``CheckoutSession`` values (what Creditline needs of a session: id, status,
amount, currency, who and which top-up it says it is for) and turns every SDK
failure into ``PaymentProviderError``.

Stripe's error text is never shown to users: it names hosts, request ids and
"let us know at support@stripe.com". ``PaymentProviderError.message`` is a
short sentence fit for a page; the SDK's own text stays in ``detail`` (and in
``__cause__``) for the log and the admins' anomaly list
(``core.payment_anomalies``). The failure is logged here, as a warning with
the exception, so no caller can forget to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe

from core.errors import PaymentError
from core.models import TopUp

log = logging.getLogger(__name__)

UNAVAILABLE = "Card payments are unavailable right now; please try again in a few minutes."


class PaymentsNotConfigured(PaymentError):
    """Raised when a card payment is attempted on a server without Stripe keys."""

    code = "payments_not_configured"


class PaymentProviderError(PaymentError):
    """Raised when Stripe could not be reached or refused the request.

    ``message`` is for users; ``detail`` is Stripe's own text, for the log
    and for admins.
    """

    code = "payment_provider_error"

    def __init__(self, detail: str) -> None:
        super().__init__(UNAVAILABLE)
        self.detail = detail


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str | None
    payment_status: str
    status: str | None
    payment_intent: str | None
    topup_id: int | None  # what the metadata claims; never trusted alone
    amount_total: int | None = None  # cents
    currency: str | None = None
    client_reference_id: str | None = None

    @property
    def paid(self) -> bool:
        return self.payment_status in ("paid", "no_payment_required")


def session_from(obj: Any) -> CheckoutSession:
    data = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    metadata = data.get("metadata") or {}
    topup_id = metadata.get("topup_id")
    intent = data.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    amount = data.get("amount_total")
    return CheckoutSession(
        id=data["id"],
        url=data.get("url"),
        payment_status=data.get("payment_status") or "unpaid",
        status=data.get("status"),
        payment_intent=intent,
        topup_id=int(topup_id) if topup_id and str(topup_id).isdigit() else None,
        amount_total=amount if type(amount) is int else None,
        currency=str(data["currency"]).lower() if data.get("currency") else None,
        client_reference_id=data.get("client_reference_id"),
    )


class StripeGateway:
    """The Stripe SDK client, configured once per app."""

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

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except stripe.StripeError as exc:
            log.warning("Stripe %s failed: %s", what, exc, exc_info=exc)
            raise PaymentProviderError(f"Stripe {what} failed: {exc}") from exc

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
        return session_from(
            self._call(
                "checkout session create",
                lambda: self.client.v1.checkout.sessions.create(params, options),
            )
        )

    def retrieve_session(self, session_id: str) -> CheckoutSession | None:
        """The session, or None if Stripe has no session with this id."""

        def retrieve() -> Any:
            try:
                return self.client.v1.checkout.sessions.retrieve(session_id)
            except stripe.InvalidRequestError as exc:
                if exc.http_status == 404:
                    return None
                raise

        found = self._call("checkout session retrieve", retrieve)
        return None if found is None else session_from(found)

    def session_for_payment_intent(self, payment_intent: str) -> CheckoutSession | None:
        found = self._call(
            "checkout session list",
            lambda: self.client.v1.checkout.sessions.list(
                {"payment_intent": payment_intent, "limit": 1}
            ),
        )
        data = found.to_dict()["data"] if hasattr(found, "to_dict") else found["data"]
        return session_from(data[0]) if data else None
