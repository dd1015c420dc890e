"""What a user's balance looks like to them and to integrations."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import normalise_email
from core.enums import Role
from core.models import User, Wallet
from core.settings import Settings


@dataclass(frozen=True)
class BalanceView:
    user_id: int
    email: str
    balance_ucr: int
    threshold_ucr: int
    flagged: bool
    reserved_ucr: int = 0  # held for calls running now (core.holds)
    is_admin: bool = False

    @property
    def available_ucr(self) -> int:
        """What the user can spend now: the balance less what running calls hold."""
        return self.balance_ucr - self.reserved_ucr

    @property
    def low(self) -> bool:
        return self.available_ucr < self.threshold_ucr

    @property
    def warn(self) -> bool:
        """Whether pages show the low-balance alert: not to an admin account that
        holds no credits (it runs the service rather than spending)."""
        if self.is_admin and self.balance_ucr == 0 and self.reserved_ucr == 0:
            return False
        return self.low


def balance_view(
    session: Session, settings: Settings, *, email: str | None = None, user_id: int | None = None
) -> BalanceView | None:
    """One indexed lookup by email or user id; None if there is no such user."""
    query = select(
        User.id,
        User.email,
        User.low_balance_threshold_ucr,
        Wallet.balance_ucr,
        Wallet.flagged,
        Wallet.reserved_ucr,
        User.role,
    ).join(Wallet, Wallet.user_id == User.id)
    if email is not None:
        query = query.where(User.email == normalise_email(email))
    else:
        query = query.where(User.id == user_id)
    row = session.execute(query).first()
    if row is None:
        return None
    threshold = row.low_balance_threshold_ucr
    if threshold is None:
        threshold = settings.default_low_balance_threshold_ucr
    return BalanceView(
        row.id,
        row.email,
        row.balance_ucr,
        threshold,
        row.flagged,
        row.reserved_ucr,
        row.role == Role.ADMIN,
    )
