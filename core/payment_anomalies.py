"""Payment anomalies: what an admin must look at, and nothing was credited for.

Recorded by ``core.payments`` when a Checkout Session does not match the
top-up it names (another user's top-up, another session's top-up, an amount
or currency other than the quote) and when Stripe fails (its error text goes
here and to the log, never to the user). Listed on ``/admin/payments`` and on
the admin's page of the user concerned.

A row with a ``reference`` (the Stripe object: ``cs_…``) is recorded once per
``code``: the success page and every webhook delivery for the same session
find the first row. Rows without a reference (Stripe failures) are one per
occurrence.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.enums import AnomalyCode
from core.models import PaymentAnomaly
from core.paging import keyset_page

# code -> what it means, for the admin page.
CODES = {
    AnomalyCode.SESSION_MISMATCH: "Checkout Session does not belong to the top-up it names",
    AnomalyCode.AMOUNT_MISMATCH: "Checkout Session amount or currency differs from the quote",
    AnomalyCode.PROVIDER_ERROR: "Stripe call failed",
}


def record(
    session: Session,
    code: AnomalyCode,
    message: str,
    *,
    reference: str | None = None,
    topup_id: int | None = None,
    user_id: int | None = None,
) -> PaymentAnomaly:
    """Add an anomaly in the caller's transaction (or find the one recorded)."""
    if code not in CODES:
        raise ValueError(f"unknown anomaly code {code!r}")
    if reference is not None:
        found = session.scalar(
            select(PaymentAnomaly).where(
                PaymentAnomaly.code == code, PaymentAnomaly.reference == reference
            )
        )
        if found is not None:
            return found
    row = PaymentAnomaly(
        code=code,
        message=message[:2000],
        reference=reference,
        topup_id=topup_id,
        user_id=user_id,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()  # a concurrent twin fails here; the caller's retry finds it
    return row


def page(
    session: Session, *, user_id: int | None = None, before_id: int | None = None, size: int = 50
) -> tuple[list[PaymentAnomaly], int | None]:
    """Newest first; keyset paginated; optionally one user's."""
    query = select(PaymentAnomaly)
    if user_id is not None:
        query = query.where(PaymentAnomaly.user_id == user_id)
    return keyset_page(session, query, PaymentAnomaly.id, before_id, size)


def for_user(session: Session, user_id: int, limit: int = 10) -> Sequence[PaymentAnomaly]:
    return page(session, user_id=user_id, size=limit)[0]
