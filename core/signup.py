"""Who may sign up, and one-time links: invitations and password resets.

The ``registration`` setting is ``open`` (anyone may sign up), ``invite``
(only with an unused invitation link an admin created) or ``closed``.

A link carries a random token (``secrets.token_urlsafe(32)``); only its
SHA-256 digest is stored, so the table cannot be replayed into working
links. A token works once (it is consumed by a conditional UPDATE in the
transaction that creates the account or sets the password) and only until
it expires. Issuing one is audited; an admin-issued reset link is shown to
the admin and, like a "forgot password" request, emailed to the user through
the outbox (when mail is configured). A forgot-password request for an
unknown or disabled address does nothing and looks the same.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import accounts, audit, outbox
from core import settings as settings_mod
from core.clock import utcnow
from core.db import Database
from core.errors import LinkInvalid, RegistrationClosed
from core.models import User
from core.outbox_models import AccountToken
from core.passwords import Passwords
from core.rawdb import RawCursor

INVITE_TTL = timedelta(days=7)
RESET_TTL = timedelta(hours=24)
FORGOT_TTL = timedelta(hours=1)

LinkFor = Callable[[str], str]  # token -> the full URL of its page


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new(session: Session, purpose: str, ttl: timedelta, **values: int | None) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        AccountToken(
            purpose=purpose, token_hash=_digest(token), expires_at=utcnow() + ttl, **values
        )
    )
    session.flush()
    return token


def _hours(ttl: timedelta) -> int:
    return int(ttl.total_seconds()) // 3600


def registration_mode(session: Session) -> str:
    return settings_mod.load(session).registration


def create_invitation(session: Session, actor: audit.Actor, reason: str) -> str:
    """A one-time invitation token, audited."""
    reason = audit.clean_reason(reason)
    token = _new(session, "invite", INVITE_TTL, created_by_id=actor.user_id)
    audit.record(
        session,
        actor,
        "invitation.create",
        "invitation",
        None,
        after={"expires_in_days": INVITE_TTL.days},
        reason=reason,
    )
    return token


def _mail_reset(session: Session, user: User, link: str, hours: int) -> None:
    outbox.enqueue_email(
        RawCursor.of_session(session),
        "password.reset",
        user.id,
        user.email,
        "Reset your Creditline password",
        f"Open this link to choose a new password (it works once, for {hours} hours):\n\n"
        f"{link}\n\nIf you did not ask for this, ignore this email.\n",
    )


def issue_reset(
    session: Session, actor: audit.Actor, user_id: int, reason: str, link_for: LinkFor
) -> str:
    """An admin's one-time reset link for a user (also emailed), audited."""
    reason = audit.clean_reason(reason)
    user = accounts.find_user_by_id(session, user_id)
    if user is None:
        raise LinkInvalid("No such user.")
    token = _new(session, "reset", RESET_TTL, user_id=user.id, created_by_id=actor.user_id)
    link = link_for(token)
    _mail_reset(session, user, link, _hours(RESET_TTL))
    audit.record(session, actor, "password_reset.issue", "user", user.id, reason=reason)
    return link


def request_reset(db: Database, email: str, link_for: LinkFor) -> None:
    """ "Forgot password": email a link if the address has an active account."""
    with db.write() as s:
        user = accounts.find_user(s, email)
        if user is None or user.is_disabled:
            return
        token = _new(s, "reset", FORGOT_TTL, user_id=user.id)
        _mail_reset(s, user, link_for(token), _hours(FORGOT_TTL))
        audit.record(s, audit.SYSTEM, "password_reset.request", "user", user.id)


def _live(session: Session, purpose: str, token: str) -> AccountToken:
    row = session.scalar(
        select(AccountToken).where(
            AccountToken.token_hash == _digest(token), AccountToken.purpose == purpose
        )
    )
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise LinkInvalid("This link is not valid: it was used already, or it has expired.")
    return row


def check_link(db: Database, purpose: str, token: str) -> None:
    """``LinkInvalid`` unless ``token`` is an unused, unexpired link of ``purpose``."""
    with db.read_session() as s:
        _live(s, purpose, token)


def _consume(session: Session, purpose: str, token: str) -> AccountToken:
    row = _live(session, purpose, token)
    done = session.execute(
        update(AccountToken)
        .where(AccountToken.id == row.id, AccountToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise LinkInvalid("This link was used already.")
    return row


def register(
    db: Database, email: str, password: str, passwords: Passwords, invite: str | None
) -> User:
    """Sign-up under the ``registration`` setting (an invitation consumed with it)."""
    with db.read_session() as s:
        mode = registration_mode(s)
    if mode == "closed":
        raise RegistrationClosed("Sign-up is closed. Ask an administrator for an account.")
    if mode == "invite":
        if not invite:
            raise RegistrationClosed("Sign-up is by invitation only.")
        check_link(db, "invite", invite)

    def in_transaction(session: Session) -> None:
        if registration_mode(session) == "closed":
            raise RegistrationClosed("Sign-up is closed. Ask an administrator for an account.")
        if registration_mode(session) == "invite":
            _consume(session, "invite", invite or "")

    return accounts.register(db, email, password, passwords, in_transaction=in_transaction)


def reset_password(db: Database, token: str, password: str, passwords: Passwords) -> None:
    """Set a new password through a reset link; every session of the user ends."""
    accounts.check_password_policy(password)
    check_link(db, "reset", token)
    password_hash = passwords.hash(password)
    with db.write() as s:
        row = _consume(s, "reset", token)
        user = accounts.find_user_by_id(s, row.user_id or 0)
        if user is None:
            raise LinkInvalid("This link is not valid.")
        user.password_hash = password_hash
        accounts.end_sessions(s, user.id)
        audit.record(s, audit.SYSTEM, "password_reset.use", "user", user.id)
