"""Integration (API) keys for services that report usage.

A key looks like ``cl_<8 id chars>_<43 secret chars>``. The first part is
stored in clear as ``prefix`` (shown in the admin list, used to find the row);
only the SHA-256 of the whole key is stored. A key has ~256 bits of entropy,
so a fast hash is enough (slow hashes defend guessable passwords), and the
comparison is constant-time. The full key is shown exactly once, at creation.

The usage endpoints find a key they have seen before in ``core.recent_keys``
and check it again in their write transaction (``core.usage_debits``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.errors import ValidationError
from core.models import IntegrationKey
from core.rawdb import RawCursor

PREFIX_LENGTH = 11  # "cl_" + 8 characters
# last_used_at is a hint for admins, not an audit trail: refresh it at most
# this often so the hot path does not write a row on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class AuthenticatedKey:
    id: int
    name: str
    last_used_at: datetime | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(session: Session, actor: audit.Actor, name: str) -> tuple[IntegrationKey, str]:
    """Create a key; returns the row and the full secret (never stored)."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError("Give the key a name of 1-100 characters.", field="name")
    key = "cl_" + secrets.token_urlsafe(6)[:8] + "_" + secrets.token_urlsafe(32)
    row = IntegrationKey(
        name=name,
        prefix=key[:PREFIX_LENGTH],
        key_hash=digest(key),
        created_by_id=actor.user_id,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "api_key.create",
        "integration_key",
        row.id,
        after={"name": name, "prefix": row.prefix},
    )
    return row, key


def authenticate(cursor: RawCursor, presented: str) -> AuthenticatedKey | None:
    """The active key matching ``presented``, or None. One indexed SELECT."""
    if not presented.startswith("cl_") or len(presented) > 200:
        return None
    row = cursor.execute(
        "SELECT id, name, key_hash, last_used_at, revoked_at FROM integration_keys"
        " WHERE prefix = :prefix",
        {"prefix": presented[:PREFIX_LENGTH]},
    ).fetchone()
    # Hash and compare even when no row matched, so timing does not tell.
    stored = row[2] if row is not None else "0" * 64
    if not hmac.compare_digest(stored, digest(presented)) or row is None:
        return None
    key_id, name, _, last_used_at, revoked_at = row
    if revoked_at is not None:
        return None
    return AuthenticatedKey(key_id, name, cursor.to_datetime(last_used_at))


def needs_touch(last_used_at: datetime | None, now: datetime | None = None) -> bool:
    """Is a key's ``last_used_at`` older than LAST_USED_RESOLUTION (or unset)?
    For integration keys and users' keys alike."""
    now = now or utcnow()
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


def touch(session: Session, key_id: int) -> None:
    session.execute(
        update(IntegrationKey).where(IntegrationKey.id == key_id).values(last_used_at=utcnow())
    )


def revoke(session: Session, actor: audit.Actor, key_id: int) -> IntegrationKey:
    row = session.get(IntegrationKey, key_id)
    if row is None:
        raise ValidationError("No such key.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            session,
            actor,
            "api_key.revoke",
            "integration_key",
            row.id,
            before={"name": row.name, "prefix": row.prefix},
        )
    return row


def list_keys(session: Session) -> list[IntegrationKey]:
    return list(
        session.scalars(
            select(IntegrationKey).order_by(
                IntegrationKey.created_at.desc(), IntegrationKey.id.desc()
            )
        )
    )
