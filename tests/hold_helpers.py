"""Holds taken straight through ``core.holds``, for the tests of holds and their CLI."""

from __future__ import annotations

from datetime import timedelta

from core import holds
from core.accounts import find_user
from core.clock import utcnow
from core.holds import HoldRequest, Snapshot
from tests.conftest import Billing

# gpt-4o-mini at the default rate: 1,000 in + 500 out = 4.5 credits.
SNAPSHOT = Snapshot(
    model_id=0,
    model_name="gpt-4o-mini",
    credits_per_usd=10_000,
    input_uusd_per_m=150_000,
    output_uusd_per_m=600_000,
    rate_version_id=None,
    price_version_id=None,
)


def request_for(
    billing: Billing,
    email: str,
    *,
    key_id: int | None = None,
    tokens: tuple[int, int] = (1000, 500),
    overdraft: int = 0,
    ttl: timedelta = timedelta(minutes=5),
) -> HoldRequest:
    model_id = model_of(billing)
    with billing.db.read_session() as s:
        user = find_user(s, email)
        return HoldRequest(
            user_id=user.id,
            user_email=user.email,
            wallet_id=user.wallet.id,
            user_key_id=key_id,
            source="laptop",
            snapshot=Snapshot(**{**SNAPSHOT.__dict__, "model_id": model_id}),
            max_input_tokens=tokens[0],
            max_output_tokens=tokens[1],
            overdraft_ucr=overdraft,
            ttl=ttl,
        )


def model_of(billing: Billing) -> int:
    with billing.db.read_session() as s:
        return billing.prices.get(s).models["gpt-4o-mini"].id


def take(billing: Billing, request: HoldRequest, **kw: int) -> holds.Hold:
    with billing.db.raw_write() as cur:
        return holds.take(cur, request, utcnow(), **kw)


def wallet(billing: Billing, email: str) -> tuple[int, int]:
    with billing.db.read_session() as s:
        w = find_user(s, email).wallet
        return w.balance_ucr, w.reserved_ucr
