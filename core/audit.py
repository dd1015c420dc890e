"""The append-only audit trail: who changed what, from what, to what, and why.

Every change an admin makes carries a reason. ``clean_reason`` is the one
rule for it, applied by every domain function that takes a reason, whether
the CLI or a form calls it: surrounding whitespace is stripped, what is left
must be non-empty and at most ``MAX_REASON_LENGTH`` characters, and the
stripped text is what is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.errors import ValidationError
from core.models import AuditEntry
from core.paging import keyset_page
from core.rawdb import RawCursor


@dataclass(frozen=True)
class Actor:
    """Who is acting: an admin in the browser (id, email, IP) or the CLI."""

    label: str
    user_id: int | None = None
    ip: str | None = None


CLI = Actor("cli")
SYSTEM = Actor("system")

MAX_REASON_LENGTH = 2000  # characters, after stripping; forms and CLI alike


def clean_reason(reason: str | None) -> str:
    """The reason as stored: stripped, required, at most MAX_REASON_LENGTH characters.

    Raises ValidationError (``field="reason"``) for an empty, blank or over-long reason.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("A reason is required.", field="reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise ValidationError(
            f"Keep the reason to {MAX_REASON_LENGTH:,} characters or fewer.", field="reason"
        )
    return reason


def _row(
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None,
) -> dict[str, Any]:
    """One audit row's columns."""
    return {
        "actor_id": actor.user_id,
        "actor_label": actor.label,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "before": _json(before),
        "after": _json(after),
        "reason": reason,
        "ip": actor.ip,
        "created_at": utcnow(),
    }


def record(
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """Append one audit row in the caller's transaction."""
    row = _row(actor, action, object_type, object_id, before, after, reason)
    session.execute(insert(AuditEntry).values(**row))


def record_raw(
    cur: RawCursor,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """``record`` for a raw-cursor write transaction (``Database.raw_write``)."""
    row = _row(actor, action, object_type, object_id, before, after, reason)
    row["created_at"] = cur.db_value(row["created_at"])
    cur.execute(
        "INSERT INTO audit_log (actor_id, actor_label, action, object_type, object_id,"
        " before, after, reason, ip, created_at) VALUES (:actor_id, :actor_label, :action,"
        " :object_type, :object_id, :before, :after, :reason, :ip, :created_at)",
        row,
    )


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def page(
    session: Session,
    *,
    action: str = "",
    actor: str = "",
    before_id: int | None = None,
    size: int = 50,
) -> tuple[list[AuditEntry], int | None]:
    """Newest first, filtered by action prefix and actor label; keyset paginated."""
    query = select(AuditEntry)
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True))
    if actor:
        query = query.where(AuditEntry.actor_label.contains(actor.lower(), autoescape=True))
    return keyset_page(session, query, AuditEntry.id, before_id, size)


def actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))
