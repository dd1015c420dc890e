"""Users and their wallets: creation, authentication, roles."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.audit import Actor
from core.clock import utcnow
from core.errors import EmailTaken, UnknownUser, ValidationError
from core.models import ROLES, User, Wallet
from core.passwords import Passwords

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def normalise_email(email: str) -> str:
    """Emails are compared case-insensitively; store them lower-cased."""
    return email.strip().lower()


def check_email(email: str) -> None:
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise ValidationError("Enter a valid email address.")


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"Password must be at most {MAX_PASSWORD_LENGTH} characters.")


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def create_user(
    session: Session, email: str, password: str, passwords: Passwords, role: str = "user"
) -> User:
    """Create a user and an empty wallet in the caller's transaction."""
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}.")
    check_password_policy(password)
    email = normalise_email(email)
    check_email(email)
    if find_user(session, email) is not None:
        raise EmailTaken("An account with this email already exists.", email=email)
    user = User(email=email, password_hash=passwords.hash(password), role=role)
    user.wallet = Wallet(balance_ucr=0)
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise EmailTaken("An account with this email already exists.", email=email) from exc
    return user


def authenticate(session: Session, email: str, password: str, passwords: Passwords) -> User | None:
    """The active user with these credentials, or None (same cost either way)."""
    user = find_user(session, email)
    ok = passwords.verify(user.password_hash if user else None, password)
    if not ok or user is None or user.is_disabled:
        return None
    user.last_login_at = utcnow()
    return user


def ensure_admin(
    session: Session, email: str, password: str | None, passwords: Passwords
) -> tuple[User, bool]:
    """Promote an existing user (optionally resetting the password) or create
    a new admin. Returns the user and whether it was created."""
    user = find_user(session, email)
    if user is None:
        if not password:
            raise ValidationError("A password is required to create a new admin.")
        return create_user(session, email, password, passwords, role="admin"), True
    user.role = "admin"
    if password:
        set_password(session, user, password, passwords)
    return user, False


def set_role(session: Session, email: str, role: str) -> User:
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}.")
    user = find_user(session, email)
    if user is None:
        raise UnknownUser(f"No user with email {email!r}.", email=email)
    user.role = role
    return user


def set_password(session: Session, user: User, password: str, passwords: Passwords) -> None:
    check_password_policy(password)
    user.password_hash = passwords.hash(password)


def change_password(
    session: Session, user_id: int, current: str, new: str, passwords: Passwords
) -> None:
    """Change a password after checking the current one."""
    user = session.get(User, user_id)
    if user is None or not passwords.verify(user.password_hash, current):
        raise ValidationError("The current password is wrong.", field="current")
    set_password(session, user, new, passwords)


def set_low_balance_threshold(session: Session, user_id: int, threshold_ucr: int | None) -> None:
    """The user's own alert threshold in µcr; None goes back to the default."""
    if threshold_ucr is not None and threshold_ucr < 0:
        raise ValidationError("The threshold cannot be negative.", field="threshold")
    user = session.get(User, user_id)
    if user is not None:
        user.low_balance_threshold_ucr = threshold_ucr


def set_access(
    session: Session, actor: Actor, user_id: int, *, role: str, disabled: bool, reason: str
) -> User:
    """Change a user's role or disabled flag, audited. Admins cannot lock
    themselves out (demote or disable their own account)."""
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}.")
    if not reason.strip():
        raise ValidationError("A reason is required.", field="reason")
    user = session.get(User, user_id)
    if user is None:
        raise UnknownUser("No such user.")
    if user.id == actor.user_id and (role != "admin" or disabled):
        raise ValidationError("You cannot demote or disable your own account.")
    before = {"role": user.role, "disabled": user.is_disabled}
    user.role, user.is_disabled = role, disabled
    after = {"role": role, "disabled": disabled}
    if before != after:
        audit.record(
            session,
            actor,
            "user.access",
            "user",
            user.id,
            before=before,
            after=after,
            reason=reason,
        )
    return user


def clear_flag(session: Session, actor: Actor, user_id: int, reason: str) -> None:
    """An admin has reviewed a wallet flagged by a refund or dispute."""
    if not reason.strip():
        raise ValidationError("A reason is required.", field="reason")
    wallet = session.scalar(select(Wallet).where(Wallet.user_id == user_id))
    if wallet is not None and wallet.flagged:
        wallet.flagged = False
        audit.record(session, actor, "wallet.unflag", "wallet", wallet.id, reason=reason)


def search(session: Session, text: str, limit: int = 50) -> list[tuple[User, Wallet]]:
    query = select(User, Wallet).join(Wallet, Wallet.user_id == User.id).order_by(User.email)
    text = text.strip().lower()
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(User.email.like(f"%{escaped}%", escape="\\"))
    return [(u, w) for u, w in session.execute(query.limit(limit)).all()]
