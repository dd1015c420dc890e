"""What an admin needs to see to fix the Stripe set-up: which key is missing
or malformed, test or live mode, the last failure Stripe reported, and the
webhook deliveries refused for their signature (a wrong
STRIPE_WEBHOOK_SECRET).

Read-only: it looks at the configured keys (never shows them), at the
newest ``provider_error`` payment anomaly, which every failed Stripe call
records (``core.payments.from_stripe``), at the refused deliveries
(``core.signature_failures``) and at the newest verified event
(``stripe_events``). Refused deliveries are a problem while none has verified
since the last of them; after a verified one they are still listed, as past.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import signature_failures
from core.enums import AnomalyCode
from core.models import PaymentAnomaly, StripeEvent
from core.signature_failures import Failures

# Stripe's words for a refused key (AuthenticationError, PermissionError).
_AUTH_MARKERS = ("invalid api key", "api key provided", "authentication", "permission")


@dataclass(frozen=True)
class StripeStatus:
    mode: str  # "live", "test" or "unknown"
    problems: list[str] = field(default_factory=list)
    last_error: str | None = None
    last_error_at: datetime | None = None
    key_rejected: bool = False
    signature_failures: Failures | None = None
    last_verified_at: datetime | None = None  # the newest event whose signature verified

    @property
    def signature_trouble(self) -> bool:
        """Deliveries are refused and none has verified since the last refusal."""
        failures = self.signature_failures
        if failures is None:
            return False
        return self.last_verified_at is None or self.last_verified_at < failures.last_at

    @property
    def ok(self) -> bool:
        return not self.problems and not self.signature_trouble


def _mode(secret_key: str) -> str:
    for prefix, mode in (("sk_live_", "live"), ("rk_live_", "live")):
        if secret_key.startswith(prefix):
            return mode
    for prefix in ("sk_test_", "rk_test_"):
        if secret_key.startswith(prefix):
            return "test"
    return "unknown"


def status(session: Session, secret_key: str | None, webhook_secret: str | None) -> StripeStatus:
    """The Stripe set-up's problems, worst first, in words an operator acts on."""
    problems: list[str] = []
    mode = "unknown"
    if not secret_key:
        problems.append("STRIPE_SECRET_KEY is not set: card top-ups are switched off.")
    else:
        mode = _mode(secret_key)
        if mode == "unknown":
            problems.append(
                "STRIPE_SECRET_KEY does not look like a Stripe secret key "
                "(sk_live_…, sk_test_…, or a restricted rk_… key)."
            )
    if not webhook_secret:
        problems.append(
            "STRIPE_WEBHOOK_SECRET is not set: Stripe's events (payments completed late, "
            "refunds, disputes) are refused."
        )
    elif not webhook_secret.startswith("whsec_"):
        problems.append("STRIPE_WEBHOOK_SECRET does not start with whsec_.")
    last = session.scalar(
        select(PaymentAnomaly)
        .where(PaymentAnomaly.code == AnomalyCode.PROVIDER_ERROR)
        .order_by(PaymentAnomaly.id.desc())
        .limit(1)
    )
    rejected = last is not None and any(m in last.message.lower() for m in _AUTH_MARKERS)
    if rejected:
        problems.insert(0, "Stripe rejected STRIPE_SECRET_KEY at its last failed call.")
    return StripeStatus(
        mode=mode,
        problems=problems,
        last_error=last.message if last is not None else None,
        last_error_at=last.created_at if last is not None else None,
        key_rejected=rejected,
        signature_failures=signature_failures.of(session),
        last_verified_at=session.scalar(select(func.max(StripeEvent.received_at))),
    )
