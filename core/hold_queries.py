"""Holds as admins see them: a paged list, a summary, and releasing one by hand.

``page`` lists holds newest first with keyset paging (``id < cursor``, as
``core.paging``), either the active ones or the ones that ended without a
charge (released or expired); settled holds are ordinary usage and show on
the usage pages.

``summary`` is the analytics page's view of the gateway: what is reserved
now, the calls of a period that ended without a charge (released, expired),
and the *shortfalls*: calls whose real cost was above their hold, so the
charge stopped at the hold and the rest was never billed. Each figure is
read through an index (the active and ended ones by status, the shortfalls
by a partial index holding only them), never by scanning every call's hold.

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

from sqlalchemy import func, select
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


@dataclass(frozen=True)
class HoldSummary:
    """The gateway's holds for admins (``summary``)."""

    active: int
    reserved_ucr: int
    released: int  # since the period's start, with no charge
    expired: int
    short_calls: int  # settled calls whose real cost was above the hold
    shortfall_ucr: int  # what those calls cost beyond their charge


def summary(session: Session, since: datetime) -> HoldSummary:
    """Active holds now; holds ended since ``since`` without a charge; shortfalls."""
    active, reserved = session.execute(
        select(func.count(), func.coalesce(func.sum(Hold.amount_ucr), 0)).where(
            Hold.status == HoldStatus.ACTIVE
        )
    ).one()
    ended = dict(
        session.execute(
            select(Hold.status, func.count())
            .where(
                Hold.status.in_((HoldStatus.RELEASED, HoldStatus.EXPIRED)),
                Hold.closed_at >= since,
            )
            .group_by(Hold.status)
        ).all()
    )
    short, shortfall = session.execute(
        select(func.count(), func.coalesce(func.sum(Hold.shortfall_ucr), 0)).where(
            Hold.shortfall_ucr > 0, Hold.closed_at >= since
        )
    ).one()
    return HoldSummary(
        int(active),
        int(reserved),
        int(ended.get(HoldStatus.RELEASED, 0)),
        int(ended.get(HoldStatus.EXPIRED, 0)),
        int(short),
        int(shortfall),
    )


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
