"""What the chat pages read: a user's conversations with an app, and their turns.

Every query takes the user's id, so another user's conversation is simply not
found (the page answers 404, as for an id that does not exist).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.dify_models import ChatConversation, ChatTurn

CONVERSATIONS_SHOWN = 50


def conversations(session: Session, user_id: int, app_id: int) -> list[ChatConversation]:
    """The user's latest conversations with the app, newest first."""
    return list(
        session.scalars(
            select(ChatConversation)
            .where(ChatConversation.user_id == user_id, ChatConversation.app_id == app_id)
            .order_by(ChatConversation.updated_at.desc(), ChatConversation.id.desc())
            .limit(CONVERSATIONS_SHOWN)
        )
    )


def conversation(
    session: Session, user_id: int, app_id: int, conversation_id: int
) -> ChatConversation | None:
    """The conversation, if it is this user's and this app's."""
    return session.scalar(
        select(ChatConversation).where(
            ChatConversation.id == conversation_id,
            ChatConversation.user_id == user_id,
            ChatConversation.app_id == app_id,
        )
    )


def turns(session: Session, conversation_id: int) -> list[ChatTurn]:
    """A conversation's turns, oldest first."""
    return list(
        session.scalars(
            select(ChatTurn)
            .where(ChatTurn.conversation_id == conversation_id)
            .order_by(ChatTurn.id)
        )
    )


def turn(session: Session, user_id: int, turn_id: int) -> ChatTurn | None:
    """The turn, if it is this user's."""
    return session.scalar(
        select(ChatTurn).where(ChatTurn.id == turn_id, ChatTurn.user_id == user_id)
    )
