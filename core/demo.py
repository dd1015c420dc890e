"""Demo data for a first run: an admin (password printed once), a few models
at realistic list prices, a demo user with 10,000 credits and an integration
key (printed once) so the README's curl examples work. Only ever applied to
an empty database, so running it twice changes nothing."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import accounts, audit, catalog, integration_keys, ledger
from core.enums import LedgerKind, Role
from core.models import User
from core.passwords import Passwords

# (name, display name, USD per 1M input tokens, USD per 1M output tokens) as µUSD.
DEMO_MODELS = (
    ("gpt-4o-mini", "GPT-4o mini", 150_000, 600_000),
    ("gpt-4o", "GPT-4o", 2_500_000, 10_000_000),
    ("claude-3-5-haiku", "Claude 3.5 Haiku", 800_000, 4_000_000),
    ("claude-sonnet-4", "Claude Sonnet 4", 3_000_000, 15_000_000),
    ("gemini-2.0-flash", "Gemini 2.0 Flash", 100_000, 400_000),
)


DEMO_USER = "alice@example.com"
DEMO_USER_CREDITS_UCR = 10_000 * 1_000_000


@dataclass(frozen=True)
class SeedResult:
    admin_email: str
    admin_password: str | None  # None when taken from the environment
    user_email: str
    user_password: str
    api_key: str


def seed_if_empty(
    session: Session, passwords: Passwords, admin_email: str, admin_password: str | None
) -> SeedResult | None:
    if session.scalar(select(func.count()).select_from(User)):
        return None
    generated = admin_password is None
    password = admin_password or secrets.token_urlsafe(12)
    accounts.create_user(session, admin_email, password, passwords, role=Role.ADMIN)
    user_password = secrets.token_urlsafe(12)
    user = accounts.create_user(session, DEMO_USER, user_password, passwords)
    ledger.post_entry(
        session, user.wallet.id, DEMO_USER_CREDITS_UCR, LedgerKind.ADJUSTMENT, memo="demo credits"
    )
    _, api_key = integration_keys.create(session, audit.SYSTEM, "demo")
    for name, display, input_price, output_price in DEMO_MODELS:
        catalog.set_model_price(
            session,
            audit.SYSTEM,
            name,
            input_uusd_per_m=input_price,
            output_uusd_per_m=output_price,
            reason="demo data",
            display_name=display,
        )
    return SeedResult(
        admin_email, password if generated else None, DEMO_USER, user_password, api_key
    )
