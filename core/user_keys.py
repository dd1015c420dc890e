"""Users' own API keys for the gateway (``clk_…``).

A key looks like ``clk_<8 id chars>_<43 secret chars>``. The first twelve
characters are stored in clear as ``prefix`` (shown in lists, used to find the
row); only the SHA-256 of the whole key is stored, and it is compared in
constant time. ~256 bits of entropy make a fast hash enough. The full key is
shown once, when it is created.

A key may carry a credit limit (``spent + reserved`` through the key never
exceeds it: ``core.holds`` moves both in the hold's transactions) and an
expiry date (the key stops working at the start of that day, UTC). Revoking
is final. A key's name is unique among its owner's keys not revoked, so
``revoke-user-key EMAIL NAME`` names one key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.errors import ValidationError
from core.gateway.models import UserApiKey
from core.pricing import format_credits
from core.rawdb import RawCursor

PREFIX_LENGTH = 12  # "clk_" + 8 characters
MAX_KEYS_PER_USER = 50


@dataclass(frozen=True)
class KeyHolder:
    """Who a presented key belongs to, and what bounds its use."""

    key_id: int
    key_name: str
    user_id: int
    user_email: str
    wallet_id: int
    user_disabled: bool
    limit_ucr: int | None
    last_used_at: datetime | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(
    session: Session,
    actor: audit.Actor,
    user_id: int,
    name: str,
    *,
    limit_ucr: int | None = None,
    expires_at: datetime | None = None,
) -> tuple[UserApiKey, str]:
    """A new key for ``user_id``; returns the row and the full key (never stored)."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError("Give the key a name of 1-100 characters.", field="name")
    if limit_ucr is not None and limit_ucr <= 0:
        raise ValidationError("A credit limit must be more than 0.", field="limit")
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise ValidationError("The expiry date must be in the future.", field="expires")
    # Names are unique among keys not revoked (expired ones keep theirs).
    mine = select(UserApiKey.name).where(
        UserApiKey.user_id == user_id, UserApiKey.revoked_at.is_(None)
    )
    names = set(session.scalars(mine))
    if name in names:
        raise ValidationError(
            "There is already a key with this name; revoke it or pick another.", field="name"
        )
    if len(names) >= MAX_KEYS_PER_USER:
        raise ValidationError(
            f"A user can have at most {MAX_KEYS_PER_USER} keys; revoke one first.", field="name"
        )
    key = "clk_" + secrets.token_urlsafe(6)[:8] + "_" + secrets.token_urlsafe(32)
    row = UserApiKey(
        user_id=user_id,
        name=name,
        prefix=key[:PREFIX_LENGTH],
        key_hash=digest(key),
        limit_ucr=limit_ucr,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "user_key.create",
        "user_api_key",
        row.id,
        after={
            "user_id": user_id,
            "name": name,
            "prefix": row.prefix,
            "limit": None if limit_ucr is None else format_credits(limit_ucr),
            "expires_at": expires_at,
        },
    )
    return row, key


def authenticate(cursor: RawCursor, presented: str) -> KeyHolder | None:
    """The working key matching ``presented`` and its owner, or None. One
    indexed SELECT on a raw cursor (every gateway call runs it)."""
    if not presented.startswith("clk_") or len(presented) > 200:
        return None
    row = cursor.execute(
        "SELECT k.id, k.name, k.key_hash, k.user_id, k.limit_ucr, k.last_used_at,"
        " k.revoked_at, k.expires_at, u.email, u.is_disabled, w.id"
        " FROM user_api_keys k JOIN users u ON u.id = k.user_id"
        " JOIN wallets w ON w.user_id = u.id WHERE k.prefix = :prefix",
        {"prefix": presented[:PREFIX_LENGTH]},
    ).fetchone()
    # Hash and compare even when no row matched, so timing does not tell.
    stored = row[2] if row is not None else "0" * 64
    if not hmac.compare_digest(stored, digest(presented)) or row is None:
        return None
    key_id, name, _, user_id, limit_ucr, last_used_at, revoked_at, expires_at = row[:8]
    email, disabled, wallet_id = row[8:]
    expires = cursor.to_datetime(expires_at)
    if revoked_at is not None or (expires is not None and expires <= utcnow()):
        return None
    return KeyHolder(
        key_id,
        name,
        user_id,
        email,
        wallet_id,
        bool(disabled),
        limit_ucr,
        cursor.to_datetime(last_used_at),
    )


def keys_of(session: Session, user_id: int) -> list[UserApiKey]:
    """A user's keys, newest first, revoked ones included."""
    return list(
        session.scalars(
            select(UserApiKey)
            .where(UserApiKey.user_id == user_id)
            .order_by(UserApiKey.created_at.desc(), UserApiKey.id.desc())
        )
    )


def revoke(
    session: Session, actor: audit.Actor, key_id: int, *, owner_id: int | None = None
) -> UserApiKey:
    """Revoke a key (idempotent). With ``owner_id``, only that user's key."""
    row = session.get(UserApiKey, key_id)
    if row is None or (owner_id is not None and row.user_id != owner_id):
        raise ValidationError("No such key.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.revoked_by_id = actor.user_id
        audit.record(
            session,
            actor,
            "user_key.revoke",
            "user_api_key",
            row.id,
            before={"user_id": row.user_id, "name": row.name, "prefix": row.prefix},
        )
    return row


def revoke_by_name(session: Session, actor: audit.Actor, user_id: int, name: str) -> UserApiKey:
    """Revoke the user's key called ``name`` (one that is not revoked yet)."""
    key_id = session.scalar(
        select(UserApiKey.id).where(
            UserApiKey.user_id == user_id,
            UserApiKey.name == name.strip(),
            UserApiKey.revoked_at.is_(None),
        )
    )
    if key_id is None:
        raise ValidationError(f"This user has no key named {name.strip()!r} to revoke.")
    return revoke(session, actor, key_id)


def touch(session: Session, key_id: int) -> None:
    """Record that the key was used now (``integration_keys.needs_touch`` says when)."""
    session.execute(update(UserApiKey).where(UserApiKey.id == key_id).values(last_used_at=utcnow()))
