"""Ledger postings that only tests need, built on ``core.ledger.post_entry``,
and a read of the low-balance alert state they lead to."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import ledger
from core.db import Database, retry_lost_races
from core.errors import ValidationError
from core.outbox_models import BalanceAlert, OutboxMessage


def credit(
    db: Database,
    wallet_id: int,
    amount_ucr: int,
    kind: str,
    reference: str,
    *,
    memo: str = "",
    credits_per_usd: int | None = None,
) -> ledger.Posting:
    """Add credits once per (kind, reference), in a transaction of its own
    (retried if it loses the UNIQUE race on the reference)."""
    if amount_ucr <= 0:
        raise ValidationError("A credit must be positive.")

    def work(session: Session) -> ledger.Posting:
        posting = ledger.post_entry(
            session,
            wallet_id,
            amount_ucr,
            kind,
            reference=reference,
            memo=memo,
            credits_per_usd=credits_per_usd,
        )
        assert posting is not None  # no floor on a credit
        return posting

    return retry_lost_races(db.write, work, IntegrityError)


def low_balance_state(db: Database) -> tuple[bool | None, int]:
    """The (one) wallet's stored low-balance flag, and how many low-balance
    emails the outbox holds."""
    with db.read_session() as s:
        low = s.scalar(select(BalanceAlert.low))
        mails = s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.event_type == "balance.low")
        )
    return low, mails or 0
