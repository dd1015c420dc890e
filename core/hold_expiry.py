"""Expiry of holds nobody closed in time (the process died mid-call).

A hold is taken with an expiry: the longest its call may run, plus the
drain time and a margin (``GatewaySettings.hold_ttl``). Expiry is lazy:
``core.holds.take`` expires a wallet's overdue holds before it reserves
(``expire_statement`` lets a caller send that UPDATE with its other reads,
``expire_overdue`` finishes the job), and ``flask release-expired-holds``
sweeps them all. An expired hold frees its reservation on the wallet and the
key and charges nothing; each one leaves ``active`` exactly once, as every
change of a hold's state does (``core.holds``' invariant 2).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from core import metrics, outbox
from core.rawdb import RawCursor, Statement


def expire_statement(cur: RawCursor, now: datetime, *, wallet_id: int | None = None) -> Statement:
    """The UPDATE that marks active holds past their time expired (one
    wallet's, or all), returning what ``expire_overdue`` needs of each."""
    where = " AND wallet_id = :w" if wallet_id is not None else ""
    return (
        "UPDATE holds SET status = 'expired', closed_at = :now, reason_code = 'expired'"
        f" WHERE status = 'active' AND expires_at < :now{where}"
        " RETURNING id, wallet_id, user_key_id, amount_ucr",
        {"now": cur.db_value(now), "w": wallet_id},
    )


def expire_overdue(
    cur: RawCursor,
    now: datetime,
    *,
    wallet_id: int | None = None,
    rows: list[Any] | None = None,
) -> list[int]:
    """Expire active holds past their time (one wallet's, or all); their ids.
    ``rows``: what ``expire_statement`` returned, if the caller ran it."""
    if rows is None:
        rows = cur.execute(*expire_statement(cur, now, wallet_id=wallet_id)).fetchall()
    if not rows:
        return []
    wallets: dict[int, int] = defaultdict(int)
    keys: dict[int, int] = defaultdict(int)
    for _, wallet, key, amount in rows:
        wallets[wallet] += amount
        if key is not None:
            keys[key] += amount
    for wallet in sorted(wallets):
        cur.execute(
            "UPDATE wallets SET reserved_ucr = reserved_ucr - :amount WHERE id = :w",
            {"amount": wallets[wallet], "w": wallet},
        )
    for key in sorted(keys):
        cur.execute(
            "UPDATE user_api_keys SET reserved_ucr = reserved_ucr - :amount WHERE id = :k",
            {"amount": keys[key], "k": key},
        )
    outbox.holds_expired(cur, rows)
    metrics.count_hold("expired", len(rows))
    return sorted(row[0] for row in rows)
