"""Typed models of chat with Dify apps: the apps, users' conversations, turns.

A *Dify app* is one of the organisation's Dify chat, agent or chatflow apps,
reached through Dify's Service API with the app's API key (sealed at rest,
``core.secret_box``). Its usage is charged at a priced model of Creditline's
own price list (the *billing model*), never at Dify's reported price.

A *conversation* belongs to one user and one app; its ``id`` is what the
pages show, Dify's conversation id stays inside. A *turn* is one question and
its answer: it holds the worst case of a message (``core.holds``) from the
moment it is stored until Dify's stream ends, and goes through ``pending`` →
``running`` → ``done`` / ``failed`` exactly once (``core.dify``).
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
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.models import Base, BigId


class DifyApp(Base):
    """A Dify app users can chat with, and what one of its messages may cost."""

    __tablename__ = "dify_apps"
    __table_args__ = (
        CheckConstraint("max_input_tokens > 0 AND max_output_tokens > 0", name="limits"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    base_url: Mapped[str] = mapped_column(String(500))  # …/v1, no trailing slash
    key_sealed: Mapped[str] = mapped_column(Text)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("ai_models.id"), index=True)
    max_input_tokens: Mapped[int] = mapped_column(BigInteger)
    max_output_tokens: Mapped[int] = mapped_column(BigInteger)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChatConversation(Base):
    """One user's conversation with one app."""

    __tablename__ = "chat_conversations"
    __table_args__ = (Index("ix_chat_conversations_user_app", "user_id", "app_id", "updated_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"))
    app_id: Mapped[int] = mapped_column(Integer, ForeignKey("dify_apps.id"))
    title: Mapped[str] = mapped_column(String(200))
    dify_conversation_id: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatTurn(Base):
    """One question to an app and its answer, with the hold that pays for it."""

    __tablename__ = "chat_turns"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'running', 'done', 'failed')", name="state"),
        Index("ix_chat_turns_conversation", "conversation_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("chat_conversations.id"))
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    hold_id: Mapped[int] = mapped_column(BigId, ForeignKey("holds.id"), unique=True)
    query: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(10), default="pending")
    error: Mapped[str | None] = mapped_column(String(300), default=None)
    task_id: Mapped[str | None] = mapped_column(String(100), default=None)
    message_id: Mapped[str | None] = mapped_column(String(100), default=None)
    input_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    output_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    charged_ucr: Mapped[int | None] = mapped_column(BigInteger, default=None)
    dify_total_price: Mapped[str | None] = mapped_column(String(40), default=None)
    disconnected: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
