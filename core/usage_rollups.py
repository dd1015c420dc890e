"""The ``usage_daily`` rollups: per (user, day, model) sums of charged events.

Every path that writes a charged usage event adds it here in the same
transaction (``core.usage_writes`` for the usage API, ``core.holds`` for a
settled hold), so the rollups equal the sums of the events (``core.ledger``'s
invariant 4) after every commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core.rawdb import RawCursor


def _rollup_rows(
    now_day: Any, rollups: Mapping[tuple[int, int], Sequence[int]]
) -> list[dict[str, Any]]:
    return [
        {
            "user_id": user_id,
            "day": now_day,
            "model_id": model_id,
            "events": sums[0],
            "input_tokens": sums[1],
            "output_tokens": sums[2],
            "cost_ucr": sums[3],
        }
        for (user_id, model_id), sums in rollups.items()
    ]


def rollup_upsert(
    cur: RawCursor, now: datetime, rollups: Mapping[tuple[int, int], Sequence[int]]
) -> tuple[str, dict[str, Any]]:
    """``add_to_rollups`` for one (user, model) as a statement and its
    parameters, for ``core.ledger`` to fold into its own. On PostgreSQL it
    is a CTE of the ledger's event statement and adds the row only if the
    event's CTE (``ev``) wrote the event."""
    (row,) = _rollup_rows(cur.db_value(now.date()), rollups)
    return (_UPSERT_ROLLUP if cur.is_sqlite else _UPSERT_ROLLUP_AFTER_EVENT), row


def add_to_rollups(
    cur: RawCursor, now: datetime, rollups: Mapping[tuple[int, int], Sequence[int]]
) -> None:
    """Add charged events to ``usage_daily``: (user, model) -> [events, input
    tokens, output tokens, cost]. In the transaction that charges them (every
    path that writes a charged usage event calls this)."""
    cur.executemany(_UPSERT_ROLLUP, _rollup_rows(cur.db_value(now.date()), rollups))


_INSERT_ROLLUP = (
    "INSERT INTO usage_daily (user_id, day, model_id, events, input_tokens, output_tokens,"
    " cost_ucr)"
)
_ROLLUP_VALUES = ":user_id, :day, :model_id, :events, :input_tokens, :output_tokens, :cost_ucr"
_ADD_ON_CONFLICT = (
    " ON CONFLICT (user_id, day, model_id) DO UPDATE SET"
    " events = usage_daily.events + excluded.events,"
    " input_tokens = usage_daily.input_tokens + excluded.input_tokens,"
    " output_tokens = usage_daily.output_tokens + excluded.output_tokens,"
    " cost_ucr = usage_daily.cost_ucr + excluded.cost_ucr"
)
_UPSERT_ROLLUP = f"{_INSERT_ROLLUP} VALUES ({_ROLLUP_VALUES}){_ADD_ON_CONFLICT}"
_UPSERT_ROLLUP_AFTER_EVENT = f"{_INSERT_ROLLUP} SELECT {_ROLLUP_VALUES} FROM ev{_ADD_ON_CONFLICT}"
