"""Typed models of the metering gateway: upstreams, routes, user keys, holds.

Units as in ``core.models``: ``_ucr`` integer micro-credits, prices integer
micro-USD per 1M tokens. Secrets are stored sealed (``core.secret_box``),
user keys as SHA-256 digests.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.enums import HoldStatus
from core.models import Base, BigId


class Upstream(Base):
    """An OpenAI-compatible service calls are forwarded to."""

    __tablename__ = "upstreams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    base_url: Mapped[str] = mapped_column(String(500))  # ends in /v1, no trailing slash
    secret_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GatewayRoute(Base):
    """Where calls for one priced model go, and the token limits of its worst case."""

    __tablename__ = "gateway_routes"
    __table_args__ = (
        CheckConstraint(
            "context_window > 0 AND max_output > 0 AND default_output_cap > 0 "
            "AND default_output_cap <= max_output AND overhead >= 0",
            name="limits",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("ai_models.id"), unique=True)
    upstream_id: Mapped[int] = mapped_column(Integer, ForeignKey("upstreams.id"), index=True)
    upstream_model: Mapped[str] = mapped_column(String(200))
    context_window: Mapped[int] = mapped_column(BigInteger)
    max_output: Mapped[int] = mapped_column(BigInteger)
    default_output_cap: Mapped[int] = mapped_column(BigInteger)
    overhead: Mapped[int] = mapped_column(Integer, default=256)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UserApiKey(Base):
    """A user's own key for ``/v1`` (``clk_…``). Only a digest of it is stored.

    ``spent_ucr`` and ``reserved_ucr`` move with the holds taken through the
    key, in the same transactions, so ``spent + reserved <= limit`` holds at
    every moment a limit is set.
    """

    __tablename__ = "user_api_keys"
    __table_args__ = (
        CheckConstraint("spent_ucr >= 0 AND reserved_ucr >= 0", name="amounts"),
        CheckConstraint("limit_ucr IS NULL OR limit_ucr >= 0", name="limit"),
        # A name is unique among a user's keys that are not revoked.
        Index(
            "uq_user_api_keys_live_name",
            "user_id",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    limit_ucr: Mapped[int | None] = mapped_column(BigInteger, default=None)
    spent_ucr: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_ucr: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_by_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"), default=None)


class Hold(Base):
    """Credits reserved for one call whose cost is not known yet (``core.holds``).

    Snapshots the rate and prices when taken; ``status`` leaves ``active``
    exactly once (settled, released or expired).
    """

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'settled', 'released', 'expired')", name="status"),
        CheckConstraint("amount_ucr >= 0 AND shortfall_ucr >= 0", name="amounts"),
        CheckConstraint(
            "charged_ucr IS NULL OR (charged_ucr >= 0 AND charged_ucr <= amount_ucr)",
            name="charged",
        ),
        Index("ix_holds_status_expires", "status", "expires_at"),
        Index("ix_holds_wallet_status", "wallet_id", "status"),
        # The few calls that cost more than their hold, for analytics.
        Index(
            "ix_holds_shortfall_closed",
            "closed_at",
            sqlite_where=text("shortfall_ucr > 0"),
            postgresql_where=text("shortfall_ucr > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wallet_id: Mapped[int] = mapped_column(Integer, ForeignKey("wallets.id"))
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"))
    user_key_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user_api_keys.id"), default=None
    )
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("ai_models.id"))
    source: Mapped[str] = mapped_column(String(120))  # the key's name, "Chat · <app>"
    amount_ucr: Mapped[int] = mapped_column(BigInteger)
    max_input_tokens: Mapped[int] = mapped_column(BigInteger)
    max_output_tokens: Mapped[int] = mapped_column(BigInteger)
    credits_per_usd: Mapped[int] = mapped_column(BigInteger)
    input_price_uusd_per_m: Mapped[int] = mapped_column(BigInteger)
    output_price_uusd_per_m: Mapped[int] = mapped_column(BigInteger)
    rate_version_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("exchange_rate_history.id"), default=None
    )
    price_version_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("model_price_history.id"), default=None
    )
    status: Mapped[str] = mapped_column(String(10), default=HoldStatus.ACTIVE)
    charged_ucr: Mapped[int | None] = mapped_column(BigInteger, default=None)
    shortfall_ucr: Mapped[int] = mapped_column(BigInteger, default=0)
    reason_code: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
