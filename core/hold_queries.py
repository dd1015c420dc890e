"""Holds as admins see them: a paged list, and releasing one by hand.

``page`` lists holds newest first with keyset paging (``id < cursor``, as
``core.paging``), either the active ones or the ones that ended without a
charge (released or expired); settled holds are ordinary usage and show on
the usage pages.

``release`` frees one active hold with no charge, for an admin who knows the
call behind it is gone. It runs in its own ``Database.raw_write``
transaction, like every hold change, and goes through
``core.holds.release_by_id``, so the hold leaves ``active`` exactly once and
the wallet's and key's reserved credits move in the same transaction as the
audit row (action ``hold.release``, with the admin's reason). A hold that is
no longer active is refused and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit, holds
from core.clock import utcnow
from core.db import Database
from core.enums import HoldStatus
from core.errors import ValidationError
from core.gateway.models import Hold
from core.models import AiModel, User

PAGE_SIZE = 50
# What a hold released by an admin records as its reason code.
ADMIN_RELEASE = "admin_release"
# The two lists of the admin page, by the name in ``?state=``.
STATES: dict[str, tuple[str, ...]] = {
    "active": (HoldStatus.ACTIVE,),
    "ended": (HoldStatus.RELEASED, HoldStatus.EXPIRED),
}


@dataclass(frozen=True)
class HoldRow:
    """One hold with its user's email and its model's name."""

    id: int
    user_id: int
    user_email: str
    source: str
    model_name: str
    amount_ucr: int
    status: str
    reason_code: str | None
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status == HoldStatus.ACTIVE


def page(
    session: Session, state: str, before_id: int | None, size: int = PAGE_SIZE
) -> tuple[list[HoldRow], int | None]:
    """One page of the holds in ``state`` (a key of STATES), newest first,
    and the cursor of the next page (None at the end)."""
    query = (
        select(
            Hold.id,
            Hold.user_id,
            User.email,
            Hold.source,
            AiModel.name,
            Hold.amount_ucr,
            Hold.status,
            Hold.reason_code,
            Hold.created_at,
            Hold.expires_at,
            Hold.closed_at,
        )
        .join(User, User.id == Hold.user_id)
        .join(AiModel, AiModel.id == Hold.model_id)
        .where(Hold.status.in_(STATES[state]))
    )
    if before_id is not None:
        query = query.where(Hold.id < before_id)
    rows = [HoldRow(*r) for r in session.execute(query.order_by(Hold.id.desc()).limit(size + 1))]
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].id if more and rows else None)


def release(db: Database, actor: audit.Actor, hold_id: int, reason: str) -> None:
    """Release an active hold with no charge, audited with ``reason``."""
    reason = audit.clean_reason(reason)
    with db.raw_write() as cur:
        row = cur.execute(
            "SELECT user_id, amount_ucr FROM holds WHERE id = :id", {"id": hold_id}
        ).fetchone()
        if row is None or not holds.release_by_id(cur, hold_id, ADMIN_RELEASE, utcnow()):
            raise ValidationError("This hold is no longer active; nothing was released.")
        audit.record_raw(
            cur,
            actor,
            "hold.release",
            "hold",
            hold_id,
            before={"status": HoldStatus.ACTIVE, "user_id": row[0], "amount_ucr": row[1]},
            after={"status": HoldStatus.RELEASED},
            reason=reason,
        )
