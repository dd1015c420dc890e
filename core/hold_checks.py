"""The hold invariants of ``core.holds``, checked from the data (``check-ledger``)."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.enums import HoldStatus
from core.gateway.models import Hold, UserApiKey
from core.ledger import LedgerProblem
from core.models import UsageEvent, Wallet


def check_holds(session: Session) -> list[LedgerProblem]:
    """Invariants 1-3 of ``core.holds``: reserved and spent amounts, one usage event a settle."""
    problems: list[LedgerProblem] = []
    active = Hold.status == HoldStatus.ACTIVE.value
    reserved = (
        select(Hold.wallet_id, func.sum(Hold.amount_ucr).label("held"))
        .where(active)
        .group_by(Hold.wallet_id)
        .subquery()
    )
    for wallet_id, found, expected in session.execute(
        select(Wallet.id, Wallet.reserved_ucr, func.coalesce(reserved.c.held, 0))
        .outerjoin(reserved, reserved.c.wallet_id == Wallet.id)
        .where(Wallet.reserved_ucr != func.coalesce(reserved.c.held, 0))
    ):
        problems.append(
            LedgerProblem("reserved != active holds", f"wallet {wallet_id}", expected, found)
        )
    by_key = (
        select(
            Hold.user_key_id,
            func.sum(case((active, Hold.amount_ucr), else_=0)).label("held"),
            func.sum(
                case((Hold.status == HoldStatus.SETTLED.value, Hold.charged_ucr), else_=0)
            ).label("spent"),
        )
        .where(Hold.user_key_id.is_not(None))
        .group_by(Hold.user_key_id)
        .subquery()
    )
    for key_id, reserved_ucr, spent_ucr, held, spent in session.execute(
        select(
            UserApiKey.id,
            UserApiKey.reserved_ucr,
            UserApiKey.spent_ucr,
            func.coalesce(by_key.c.held, 0),
            func.coalesce(by_key.c.spent, 0),
        ).outerjoin(by_key, by_key.c.user_key_id == UserApiKey.id)
    ):
        if reserved_ucr != held:
            problems.append(
                LedgerProblem("key reserved != active holds", f"key {key_id}", held, reserved_ucr)
            )
        if spent_ucr != spent:
            problems.append(
                LedgerProblem("key spent != settled charges", f"key {key_id}", spent, spent_ucr)
            )
    events = (
        select(
            UsageEvent.hold_id, func.count().label("n"), func.sum(UsageEvent.cost_ucr).label("cost")
        )
        .where(UsageEvent.hold_id.is_not(None))
        .group_by(UsageEvent.hold_id)
        .subquery()
    )
    for hold_id, status, charged, n, cost in session.execute(
        select(Hold.id, Hold.status, Hold.charged_ucr, events.c.n, events.c.cost).outerjoin(
            events, events.c.hold_id == Hold.id
        )
    ):
        settled = status == HoldStatus.SETTLED.value
        if (n or 0) != (1 if settled else 0):
            problems.append(
                LedgerProblem(
                    "usage events of a hold",
                    f"hold {hold_id} ({status})",
                    1 if settled else 0,
                    n or 0,
                )
            )
        elif settled and cost != charged:
            problems.append(
                LedgerProblem("hold charge != its usage event", f"hold {hold_id}", charged, cost)
            )
    return problems
