"""The statements that take a hold, and what their results mean (``core.holds.take``).

A take is three statements in one transaction, in this order: the wallet's
conditional UPDATE (its reservation, only if enough is available and the
user is not disabled), the hold's INSERT (only while the user has fewer
than ``max_active`` active holds) and the key's conditional UPDATE (its
reservation, only if the key is live and within its limit). Any refusal
rolls all of it back. The order is ``core.holds``' lock order (holds,
wallets, keys), and the key goes last of all: when the wallet refuses, the
INSERT may still wait for the wallet's row (its foreign-key check) behind a
writer that holds the wallet and goes on to the key, so a refused take must
not hold the key meanwhile. The INSERT's count is a statement of its own
after the wallet's UPDATE, so on PostgreSQL it sees every hold committed
before the wallet's lock was granted: the cap holds across processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from core.enums import HoldStatus
from core.errors import (
    ConcurrencyLimited,
    DomainError,
    InsufficientCredits,
    KeyLimitReached,
    Unauthenticated,
    UserDisabled,
)
from core.pricing import format_credits
from core.rawdb import RawCursor, Statement, insert_sql

if TYPE_CHECKING:
    from core.holds import HoldRequest


def take_statements(
    cur: RawCursor, request: HoldRequest, now: datetime, *, max_active: int | None = None
) -> list[Statement]:
    """The take's statements (see module), in order, for ``core.holds.take``
    or a caller that sends them with statements of its own before them (one
    round trip on PostgreSQL) once the wallet has no overdue hold left;
    ``taken_id`` reads their results."""
    amount = request.amount_ucr
    snap = request.snapshot
    hold = {
        "wallet_id": request.wallet_id,
        "user_id": request.user_id,
        "user_key_id": request.user_key_id,
        "model_id": snap.model_id,
        "source": request.source,
        "amount_ucr": amount,
        "max_input_tokens": request.max_input_tokens,
        "max_output_tokens": request.max_output_tokens,
        "credits_per_usd": snap.credits_per_usd,
        "input_price_uusd_per_m": snap.input_uusd_per_m,
        "output_price_uusd_per_m": snap.output_uusd_per_m,
        "rate_version_id": snap.rate_version_id,
        "price_version_id": snap.price_version_id,
        "status": HoldStatus.ACTIVE.value,
        "shortfall_ucr": 0,
        "created_at": cur.db_value(now),
        "expires_at": cur.db_value(now + request.ttl),
    }
    params = {
        "amount": amount,
        "w": request.wallet_id,
        "k": request.user_key_id,
        "now": cur.db_value(now),
    }
    statements = [(_TAKE_WALLET, {**params, "need": amount - request.overdraft_ucr})]
    if max_active is None:
        statements.append((insert_sql("holds", list(hold)) + " RETURNING id", hold))
    else:
        insert = _insert_hold_below_sql(tuple(hold))
        statements.append((insert, {**hold, "w": request.wallet_id, "max_active": max_active}))
    if request.user_key_id is not None:
        statements.append((_TAKE_KEY, params))
    return statements


def taken_id(
    cur: RawCursor, request: HoldRequest, now: datetime, results: Sequence[list[Any]]
) -> int:
    """The id of the hold ``take_statements`` inserted, from their
    ``results``; or why it was refused, raised: ``UserDisabled``,
    ``InsufficientCredits``, ``ConcurrencyLimited``, ``Unauthenticated``
    (the key) or ``KeyLimitReached``."""
    amount = request.amount_ucr
    wallet, inserted, *key = results
    if not wallet:
        raise _wallet_refusal(cur, request.wallet_id, amount)
    if not inserted:
        running = cur.scalar(_COUNT_ACTIVE, {"w": request.wallet_id})
        raise ConcurrencyLimited(
            f"You already have {running} calls running; wait for one to finish.",
            retry_after=1,
        )
    [(hold_id,)] = inserted
    if request.user_key_id is not None and not key[0]:
        raise _key_refusal(cur, request.user_key_id, amount, now)
    return int(hold_id)


def _wallet_refusal(cur: RawCursor, wallet_id: int, amount: int) -> DomainError:
    """Why the wallet refused a hold: its user is disabled, or too little is available."""
    available, disabled = cur.execute(
        "SELECT w.balance_ucr - w.reserved_ucr, u.is_disabled FROM wallets w"
        " JOIN users u ON u.id = w.user_id WHERE w.id = :w",
        {"w": wallet_id},
    ).fetchone()
    if disabled:
        return UserDisabled("This account is disabled.")
    return InsufficientCredits(
        f"This call may cost up to {format_credits(amount)} credits; "
        f"{format_credits(available)} are available.",
        required=format_credits(amount),
        available=format_credits(available),
    )


def _key_refusal(cur: RawCursor, key_id: int, amount: int, now: datetime) -> DomainError:
    """Why the key refused a hold: revoked or expired, or its credit limit."""
    revoked_at, expires_at = cur.execute(
        "SELECT revoked_at, expires_at FROM user_api_keys WHERE id = :k", {"k": key_id}
    ).fetchone()
    expires = cur.to_datetime(expires_at)
    if revoked_at is not None or (expires is not None and expires <= now):
        return Unauthenticated("This API key has been revoked or has expired.")
    return KeyLimitReached(
        "This call may cost more than is left of this key's credit limit.",
        required=format_credits(amount),
    )


_TAKE_WALLET = (
    "UPDATE wallets SET reserved_ucr = reserved_ucr + :amount"
    " WHERE id = :w AND balance_ucr - reserved_ucr >= :need"
    " AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = wallets.user_id AND u.is_disabled)"
    " RETURNING id"
)
_COUNT_ACTIVE = "SELECT COUNT(*) FROM holds WHERE wallet_id = :w AND status = 'active'"
_TAKE_KEY = (
    "UPDATE user_api_keys SET reserved_ucr = reserved_ucr + :amount WHERE id = :k"
    " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now)"
    " AND (limit_ucr IS NULL OR spent_ucr + reserved_ucr + :amount <= limit_ucr) RETURNING id"
)


@lru_cache(maxsize=4)
def _insert_hold_below_sql(columns: tuple[str, ...]) -> str:
    """The hold's INSERT, made only while its wallet has fewer than
    ``:max_active`` active holds."""
    values = ", ".join(f":{column}" for column in columns)
    return (
        f"INSERT INTO holds ({', '.join(columns)}) SELECT {values}"
        f" WHERE ({_COUNT_ACTIVE}) < :max_active RETURNING id"
    )
