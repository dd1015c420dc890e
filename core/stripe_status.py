"""What an admin needs to see to fix the Stripe set-up: which key is missing
or malformed, test or live mode, and the last failure Stripe reported.

Read-only: it looks at the configured keys (never shows them) and at the
newest ``provider_error`` payment anomaly, which every failed Stripe call
records (``core.payments.from_stripe``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import AnomalyCode
from core.models import PaymentAnomaly

# Stripe's words for a refused key (AuthenticationError, PermissionError).
_AUTH_MARKERS = ("invalid api key", "api key provided", "authentication", "permission")


@dataclass(frozen=True)
class StripeStatus:
    mode: str  # "live", "test" or "unknown"
    problems: list[str] = field(default_factory=list)
    last_error: str | None = None
    last_error_at: datetime | None = None
    key_rejected: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


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
    )
