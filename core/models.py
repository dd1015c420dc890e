"""Typed SQLAlchemy models.

Units are in the column names: ``_ucr`` is integer micro-credits (1 credit =
10^6 µcr), ``_cents`` integer USD cents, ``_uusd_per_m`` integer micro-USD per
million tokens. No float column holds an amount.

Columns holding one of a closed set of words (role, ledger kind, statuses)
take the ``core.enums`` members, and their CHECK constraints are built from
the same enums (``check_in``), with the text the migrations wrote.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.clock import utcnow
from core.enums import LedgerKind, Role, TopUpStatus, UsageStatus, check_in

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {int: BigInteger, datetime: DateTime()}  # noqa: RUF012


class User(Base):
    __tablename__ = "users"
    __table_args__ = (check_in("role", Role, name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10), default=Role.USER)
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # None means "use the admin's default threshold".
    low_balance_threshold_ucr: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    # Part of every sign-in session's identity (``get_id``); raising it ends
    # all of the user's sessions (``core.accounts.end_sessions``).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The IANA time zone the user's pages show times in (core.time_zones).
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")

    wallet: Mapped[Wallet] = relationship(back_populates="user", uselist=False)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

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
        """The session id, ``<id>:<session generation>`` (older generations are over)."""
        return f"{self.id}:{self.session_generation}"


class Wallet(Base):
    """A user's credit balance. Only ``core.ledger`` changes ``balance_ucr``
    (``post_entry``, ``set_balances``), always with a ledger entry."""

    __tablename__ = "wallets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="RESTRICT"), unique=True
    )
    balance_ucr: Mapped[int] = mapped_column(BigInteger, default=0)
    # Sum of the wallet's active holds (core.holds): available = balance - reserved.
    reserved_ucr: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Set when a refund or dispute took the balance below zero; admins review.
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="wallet")


class LedgerEntry(Base):
    """One signed movement of credits. Append-only: corrections are new rows."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        check_in("kind", LedgerKind, name="kind"),
        # Idempotency: one entry per (kind, external reference), e.g. one
        # refund entry per Stripe refund id. NULL references never collide.
        UniqueConstraint("kind", "reference"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wallet_id: Mapped[int] = mapped_column(Integer, ForeignKey("wallets.id"), index=True)
    amount_ucr: Mapped[int] = mapped_column(BigInteger)
    balance_after_ucr: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # core.enums.LedgerKind
    reference: Mapped[str | None] = mapped_column(String(200), default=None)
    # The exchange rate that applied, so any entry can be explained later
    # (usage entries also point at their event, which records the prices).
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


class ConfigVersion(Base):
    """One row whose counter every rate, price, settings, route or upstream change
    increments in the same transaction. Each process caches the price book (and
    the gateway its routes) and reloads it when this number moves, so a change
    is in force for the very next event on every worker."""

    __tablename__ = "config_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=1)


class AiModel(Base):
    """A priced AI model. ``name`` is the id integrations send (``gpt-4o-mini``)."""

    __tablename__ = "ai_models"
    __table_args__ = (
        CheckConstraint("input_price_uusd_per_m >= 0", name="input_price"),
        CheckConstraint("output_price_uusd_per_m >= 0", name="output_price"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    input_price_uusd_per_m: Mapped[int] = mapped_column(BigInteger)
    output_price_uusd_per_m: Mapped[int] = mapped_column(BigInteger)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The model_price_history row that set the current prices.
    price_version_id: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelPriceChange(Base):
    """Append-only history of a model's prices and enabled flag (a version each)."""

    __tablename__ = "model_price_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("ai_models.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"), default=None)
    actor_label: Mapped[str] = mapped_column(String(254))
    old_input_uusd_per_m: Mapped[int | None] = mapped_column(BigInteger, default=None)
    old_output_uusd_per_m: Mapped[int | None] = mapped_column(BigInteger, default=None)
    old_enabled: Mapped[bool | None] = mapped_column(Boolean, default=None)
    new_input_uusd_per_m: Mapped[int] = mapped_column(BigInteger)
    new_output_uusd_per_m: Mapped[int] = mapped_column(BigInteger)
    new_enabled: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateChange(Base):
    """Append-only history of the exchange rate; the newest row is the current rate."""

    __tablename__ = "exchange_rate_history"
    __table_args__ = (
        CheckConstraint("credits_per_usd BETWEEN 1 AND 1000000000", name="credits_per_usd"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    credits_per_usd: Mapped[int] = mapped_column(BigInteger)
    old_credits_per_usd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    actor_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"), default=None)
    actor_label: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntegrationKey(Base):
    """An API key for a reporting service. Only a hash of the secret is stored."""

    __tablename__ = "integration_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class UsageEvent(Base):
    """One usage report, charged or rejected. Kept either way: nothing is lost."""

    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("integration_key_id", "event_id"),
        check_in("status", UsageStatus, name="status"),
        CheckConstraint("input_tokens >= 0 AND output_tokens >= 0", name="tokens"),
        # A user's history, newest first; and the admins' view of rejections.
        Index("ix_usage_events_user_received", "user_id", "received_at"),
        Index("ix_usage_events_status_received", "status", "received_at"),
        # Keyset pagination of a user's history, newest first (id follows time).
        Index("ix_usage_events_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Reported events carry their integration key; gateway and chat calls
    # carry their hold instead (one usage event per settled hold).
    integration_key_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("integration_keys.id"), default=None
    )
    hold_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("holds.id"), unique=True, default=None
    )
    user_key_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user_api_keys.id"), default=None
    )
    # What users see as the source: "API", a key's name, "Chat · <app>".
    source: Mapped[str] = mapped_column(String(120), default="API", server_default="API")
    # A gateway call whose client left before the end (charged as drained).
    disconnected: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    event_id: Mapped[str] = mapped_column(String(200))
    payload_hash: Mapped[str] = mapped_column(String(64))
    user_ref: Mapped[str] = mapped_column(String(254))  # the email as sent
    user_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"), default=None)
    model_name: Mapped[str] = mapped_column(String(100))  # as sent
    model_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("ai_models.id"), default=None)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_ucr: Mapped[int | None] = mapped_column(BigInteger, default=None)
    status: Mapped[str] = mapped_column(String(10))  # core.enums.UsageStatus
    reason_code: Mapped[str | None] = mapped_column(String(40), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # What applied: the rate and prices themselves and the ids of their versions.
    credits_per_usd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    input_price_uusd_per_m: Mapped[int | None] = mapped_column(BigInteger, default=None)
    output_price_uusd_per_m: Mapped[int | None] = mapped_column(BigInteger, default=None)
    rate_version_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("exchange_rate_history.id"), default=None
    )
    price_version_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("model_price_history.id"), default=None
    )
    balance_after_ucr: Mapped[int | None] = mapped_column(BigInteger, default=None)
    conversation_id: Mapped[str | None] = mapped_column(String(200), default=None)
    occurred_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageDaily(Base):
    """Per user, UTC day of charge and model: totals of charged events. Updated in
    the debit's transaction so dashboards never scan the event history."""

    __tablename__ = "usage_daily"
    # Admin analytics read a day or two of every user's rows (core.analytics).
    __table_args__ = (Index("ix_usage_daily_day", "day"),)

    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("ai_models.id"), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_ucr: Mapped[int] = mapped_column(BigInteger, default=0)


class Notification(Base):
    """A message for a user's dashboard (rejected usage, refunds, ...)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """Who did what, with before/after. The database refuses UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"), default=None)
    actor_label: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(200), default=None)
    before: Mapped[str | None] = mapped_column(Text, default=None)  # JSON
    after: Mapped[str | None] = mapped_column(Text, default=None)  # JSON
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    ip: Mapped[str | None] = mapped_column(String(45), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class TopUp(Base):
    """A card top-up through Stripe Checkout.

    Created ``pending`` (with the credits quoted at the rate of the moment)
    before Stripe is called. ``status`` only moves forward: pending ->
    failed/expired -> paid. What has been posted to the ledger for it is kept
    in the ``*_ucr`` columns so ``core.topup_ledger.reconcile`` posts only deltas.
    """

    __tablename__ = "topups"
    __table_args__ = (
        check_in("status", TopUpStatus, name="status"),
        CheckConstraint("amount_cents > 0", name="amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    wallet_id: Mapped[int] = mapped_column(Integer, ForeignKey("wallets.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    credits_ucr: Mapped[int] = mapped_column(BigInteger)  # quoted when created
    credits_per_usd: Mapped[int] = mapped_column(BigInteger)
    rate_version_id: Mapped[int] = mapped_column(Integer, ForeignKey("exchange_rate_history.id"))
    status: Mapped[str] = mapped_column(String(10), default=TopUpStatus.PENDING)
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    checkout_url: Mapped[str | None] = mapped_column(Text, default=None)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True, default=None)
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    credited_ucr: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_debited_ucr: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(default=None)


class TopUpDispute(Base):
    """A card dispute on a top-up's charge, and what it has cost in credits."""

    __tablename__ = "topup_disputes"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's dp_…
    topup_id: Mapped[int] = mapped_column(Integer, ForeignKey("topups.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32))  # core.enums.DisputeStatus
    debited_ucr: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StripeEvent(Base):
    """Stripe events already processed: the primary key deduplicates them."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # evt_…
    type: Mapped[str] = mapped_column(String(100))
    topup_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("topups.id"), default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class TopUpPosting(Base):
    """The top-up a ledger entry was posted for; written with it (append-only)."""

    __tablename__ = "topup_postings"

    ledger_entry_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("ledger_entries.id"), primary_key=True
    )
    topup_id: Mapped[int] = mapped_column(Integer, ForeignKey("topups.id"), index=True)


class PaymentAnomaly(Base):
    """A payment an admin must look at (``core.payment_anomalies``)."""

    __tablename__ = "payment_anomalies"
    __table_args__ = (UniqueConstraint("code", "reference"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(40))  # core.enums.AnomalyCode
    message: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(255), default=None)  # cs_…, evt_…
    topup_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("topups.id"), default=None)
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id"), index=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# The gateway's tables share this metadata (usage events point at holds), and
# so do the chat's (conversations and turns point at users and holds), the
# outbox's, the refused webhook deliveries' and the stored analytics totals.
from core import analytics_store as _analytics_store  # noqa: E402, F401
from core import dify_models as _dify_models  # noqa: E402, F401
from core import outbox_models as _outbox_models  # noqa: E402, F401
from core import signature_failures as _signature_failures  # noqa: E402, F401
from core.gateway import models as _gateway_models  # noqa: E402, F401
