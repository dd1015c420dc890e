"""Users and their wallets: creation, authentication, roles, sessions.

Emails are canonicalised by ``core.emails`` (re-exported here: other modules
import ``normalise_email`` from this one).

Password hashes are computed outside write transactions (``register``,
``authenticate``, ``change_password`` take the ``Database`` and open their own
short transactions around the check): an argon2 hash takes a fifth of a
second, and inside ``Database.write()`` it would hold the writer lock, and
with it every usage debit, for all of that time. The write then re-checks
what the hash was computed against (the stored hash is unchanged, the email
still free). ``create_user`` still hashes in the caller's transaction, for
the CLI, the demo seed and tests.

Sessions: a user's ``session_generation`` is part of every sign-in session
(``User.get_id``), and the user loader refuses a session of an older
generation. ``end_sessions`` raises it, which ends every session of that user
at once, on every device and including any "remember me" cookie. Sign-out
does that (so a copied cookie replayed after sign-out is dead), a password
change does it and signs the current session back in with the new
generation, and so does any change of role or of the disabled flag (so
re-enabling an account does not revive sessions from before). One integer
on a row the loader reads anyway, rather than a table of session ids: no
extra query or write per request, and nothing to clean up. The price is
that signing out on one device signs out the others too, which for an
account that spends money is the safer surprise.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.audit import Actor
from core.clock import utcnow
from core.db import Database
from core.emails import MAX_EMAIL_LENGTH as MAX_EMAIL_LENGTH
from core.emails import check_email
from core.emails import normalise_email as normalise_email
from core.enums import Role, is_member
from core.errors import EmailTaken, UnknownUser, ValidationError
from core.models import User, Wallet
from core.passwords import Passwords

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"Password must be at most {MAX_PASSWORD_LENGTH} characters.")


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def check_new_account(email: str, password: str) -> str:
    """The canonical email for a new account, or ValidationError. No hashing."""
    check_password_policy(password)
    email = normalise_email(email)
    check_email(email)
    return email


def _taken(email: str) -> EmailTaken:
    return EmailTaken("An account with this email already exists.", email=email)


def _add_user(session: Session, email: str, password_hash: str, role: str) -> User:
    if find_user(session, email) is not None:
        raise _taken(email)
    user = User(email=email, password_hash=password_hash, role=role)
    user.wallet = Wallet(balance_ucr=0)
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise _taken(email) from exc
    return user


def create_user(
    session: Session, email: str, password: str, passwords: Passwords, role: str = Role.USER
) -> User:
    """Create a user and an empty wallet in the caller's transaction (hashing
    in it: for the CLI and the demo seed; the sign-up page uses ``register``)."""
    if not is_member(role, Role):
        raise ValidationError(f"Unknown role {role!r}.")
    email = check_new_account(email, password)
    if find_user(session, email) is not None:
        raise _taken(email)
    return _add_user(session, email, passwords.hash(password), role)


def register(
    db: Database,
    email: str,
    password: str,
    passwords: Passwords,
    *,
    in_transaction: Callable[[Session], None] | None = None,
) -> User:
    """Sign-up: a new user with an empty wallet, hashed outside any transaction.
    ``in_transaction`` runs first in the write (``core.signup``: the invitation)."""
    email = check_new_account(email, password)
    with db.read_session() as s:
        if find_user(s, email) is not None:
            raise _taken(email)
    password_hash = passwords.hash(password)
    with db.write() as s:
        if in_transaction is not None:
            in_transaction(s)
        return _add_user(s, email, password_hash, Role.USER)


def authenticate(db: Database, email: str, password: str, passwords: Passwords) -> User | None:
    """The active user with these credentials, or None (same cost either way:
    an unknown email is checked against a dummy hash)."""
    with db.read_session() as s:
        found = find_user(s, email)
        user_id, stored = (found.id, found.password_hash) if found else (None, None)
    if not passwords.verify(stored, password) or user_id is None:
        return None
    with db.write() as s:
        user = s.get(User, user_id)
        # Disabled, or the password changed while we were hashing: no.
        if user is None or user.is_disabled or user.password_hash != stored:
            return None
        user.last_login_at = utcnow()
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """End every sign-in session of this user (see the module docstring)."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
    )


def ensure_admin(
    session: Session, email: str, password: str | None, passwords: Passwords
) -> tuple[User, bool]:
    """Promote an existing user (optionally resetting the password) or create
    a new admin. Returns the user and whether it was created."""
    user = find_user(session, email)
    if user is None:
        if not password:
            raise ValidationError("A password is required to create a new admin.")
        return create_user(session, email, password, passwords, role=Role.ADMIN), True
    _set_role_and_disabled(session, user, Role.ADMIN, user.is_disabled)
    if password:
        set_password(session, user, password, passwords)
    return user, False


def set_role(session: Session, email: str, role: str) -> User:
    if not is_member(role, Role):
        raise ValidationError(f"Unknown role {role!r}.")
    user = find_user(session, email)
    if user is None:
        raise UnknownUser(f"No user with email {email!r}.", email=email)
    _set_role_and_disabled(session, user, role, user.is_disabled)
    return user


def _set_role_and_disabled(session: Session, user: User, role: str, disabled: bool) -> bool:
    """Change what a user may do; a change ends their sessions. Changed?"""
    if (user.role, user.is_disabled) == (role, disabled):
        return False
    user.role, user.is_disabled = role, disabled
    end_sessions(session, user.id)
    return True


def set_password(session: Session, user: User, password: str, passwords: Passwords) -> None:
    """Set a new password (the CLI's reset) and end every session of the user."""
    check_password_policy(password)
    user.password_hash = passwords.hash(password)
    end_sessions(session, user.id)


def change_password(
    db: Database, user_id: int, current: str, new: str, passwords: Passwords
) -> User:
    """Change a password after checking the current one; every session of the
    user ends. Returns the user with the new session generation, for the
    caller to sign its own session back in."""
    check_password_policy(new)
    with db.read_session() as s:
        found = s.get(User, user_id)
        stored = found.password_hash if found else None
    if not passwords.verify(stored, current):
        raise ValidationError("The current password is wrong.", field="current")
    new_hash = passwords.hash(new)
    with db.write() as s:
        user = s.get(User, user_id)
        if user is None or user.password_hash != stored:
            raise ValidationError(
                "The password was changed meanwhile. Please try again.", field="current"
            )
        user.password_hash = new_hash
        end_sessions(s, user.id)
    return user


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
    if not is_member(role, Role):
        raise ValidationError(f"Unknown role {role!r}.")
    reason = audit.clean_reason(reason)
    user = session.get(User, user_id)
    if user is None:
        raise UnknownUser("No such user.")
    if user.id == actor.user_id and (role != Role.ADMIN or disabled):
        raise ValidationError("You cannot demote or disable your own account.")
    before = {"role": user.role, "disabled": user.is_disabled}
    after = {"role": role, "disabled": disabled}
    if _set_role_and_disabled(session, user, role, disabled):
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
    reason = audit.clean_reason(reason)
    wallet = session.scalar(select(Wallet).where(Wallet.user_id == user_id))
    if wallet is not None and wallet.flagged:
        wallet.flagged = False
        audit.record(session, actor, "wallet.unflag", "wallet", wallet.id, reason=reason)


def find_user_by_id(session: Session, user_id: int) -> User | None:
    """The user with this id, or None."""
    return session.get(User, user_id)


def search_users(session: Session, text: str, limit: int = 50) -> list[tuple[User, Wallet]]:
    """Users whose email contains ``text`` (any case; ``%`` and ``_`` are literal),
    with their wallets, in email order; every user when ``text`` is blank."""
    query = select(User, Wallet).join(Wallet, Wallet.user_id == User.id).order_by(User.email)
    text = text.strip().lower()
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(User.email.like(f"%{escaped}%", escape="\\"))
    return [(u, w) for u, w in session.execute(query.limit(limit)).all()]
