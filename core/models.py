"""Typed SQLAlchemy models.

Units are in the column names: ``_ucr`` is integer micro-credits (1 credit =
10^6 µcr), ``_cents`` integer USD cents, ``_uusd_per_m`` integer micro-USD per
million tokens. No float column holds an amount.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.clock import utcnow

# Ids of tables that grow with traffic: 64-bit on PostgreSQL, and plain
# INTEGER on SQLite so the column stays the rowid (autoincrementing).
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Deterministic constraint names keep Alembic batch migrations on SQLite sane.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("user", "admin")
LEDGER_KINDS = ("topup", "usage", "refund", "dispute", "adjustment", "reversal")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {int: BigInteger, datetime: DateTime()}  # noqa: RUF012


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10), default="user")
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # None means "use the admin's default threshold".
    low_balance_threshold_ucr: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)

    wallet: Mapped[Wallet] = relationship(back_populates="user", uselist=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    # The four members Flask-Login expects, without importing it here.
    @property
    def is_active(self) -> bool:
        return not self.is_disabled

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class Wallet(Base):
    """A user's credit balance. Only ``core.ledger`` changes ``balance_ucr``."""

    __tablename__ = "wallets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="RESTRICT"), unique=True
    )
    balance_ucr: Mapped[int] = mapped_column(BigInteger, default=0)
    # Set when a refund or dispute took the balance below zero; admins review.
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="wallet")


class LedgerEntry(Base):
    """One signed movement of credits. Append-only: corrections are new rows."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('topup', 'usage', 'refund', 'dispute', 'adjustment', 'reversal')",
            name="kind",
        ),
        # Idempotency: one entry per (kind, external reference), e.g. one
        # refund entry per Stripe refund id. NULL references never collide.
        UniqueConstraint("kind", "reference"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wallet_id: Mapped[int] = mapped_column(Integer, ForeignKey("wallets.id"), index=True)
    amount_ucr: Mapped[int] = mapped_column(BigInteger)
    balance_after_ucr: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(200), default=None)
    # The exchange rate that applied, so any entry can be explained later.
    credits_per_usd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    memo: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Setting(Base):
    """Admin-tunable values, stored as JSON text under a key."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
