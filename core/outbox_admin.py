"""The outbox as admins see it: the delivery log, and a retry of a row now."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit, outbox
from core.clock import utcnow
from core.errors import ValidationError
from core.outbox_models import OutboxMessage

RETRYABLE = ("failed", "pending", "skipped")


def recent(session: Session, limit: int = 100) -> Sequence[OutboxMessage]:
    """The newest outbox rows, emails and webhook events, newest first."""
    return session.scalars(
        select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    ).all()


def retry(session: Session, actor: audit.Actor, message_id: int, reason: str) -> None:
    """Make a row due now (a failed or skipped one pending again), audited."""
    reason = audit.clean_reason(reason)
    row = session.get(OutboxMessage, message_id)
    if row is None or row.status not in RETRYABLE:
        raise ValidationError("Only a failed, skipped or waiting delivery can be retried.")
    before = {"status": row.status, "attempts": row.attempts}
    row.status = "pending"
    outbox.mark_due()
    row.next_attempt_at = utcnow()
    row.lease_until = None
    if row.attempts:
        row.attempts = 0  # a fresh round of attempts
    session.flush()
    audit.record(
        session,
        actor,
        "outbox.retry",
        "outbox_message",
        row.id,
        before=before,
        after={"status": "pending", "attempts": 0},
        reason=reason,
    )
