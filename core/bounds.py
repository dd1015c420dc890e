"""Bounds on every number that reaches the database, defined once.

Every amount column is a signed 64-bit integer (at most 9,223,372,036,854,775,807,
about 9.2 x 10^18). On PostgreSQL a value or a sum beyond that is an error; on
SQLite a Python int beyond it cannot even be bound, and SQL arithmetic that
overflows silently turns into a float. So no value may get near it: each entry
point (API, admin forms, CLI, settings) checks its input against the bounds
below, and products such as ``tokens x price x rate`` are computed in Python
ints (unbounded) and compared with the bound before anything is written.

The ceilings, and why they are safe:

- ``MAX_AMOUNT_UCR`` = 10^12 credits = 10^18 µcr: the largest single amount
  (an adjustment, a per-event cap, an overdraft, a top-up's credits) and the
  largest balance an admin adjustment may leave. Adding two bounded values
  stays below 2 x 10^18, far inside 64 bits, so ``balance + amount`` in SQL
  never overflows.
- ``MAX_RATE`` = 10^9 credits per USD (the contract's range 1 ... 10^9).
- ``MAX_PRICE_UUSD_PER_M`` = $1,000,000 per 1M tokens.
- ``MAX_TOKENS`` = 2^53 - 1 tokens per field: JSON's exact integer range, the
  API's schema maximum. A count above the admin's per-event cap but within
  it is still stored (as a rejected event): the token columns are 64-bit.
- ``MAX_TOKENS_PER_EVENT`` = 10^9: the highest per-event token cap an admin
  may set (100 x the default), so the daily rollups of charged tokens would
  need billions of events per user and day to overflow.
- ``MAX_TOPUP_OPTION_USD`` = $10,000, and at the current rate the credits one
  option buys must not exceed ``MAX_AMOUNT_UCR`` (at 10^9 credits per USD an
  option is at most $1,000). Rate changes and option changes are both checked.
- Usage timestamps (``occurred_at``): the year, as written, from
  ``MIN_EVENT_YEAR`` to ``MAX_EVENT_YEAR``. A fixed range can be published in
  the API's schema, and the same request always gets the same answer.

The cost stored on a rejected event is kept only if it is within
``MAX_AMOUNT_UCR`` (``storable_amount``); a larger one is stored as NULL, and
the rejection's reason states the exact figure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

INT64_MAX = 2**63 - 1
_UCR_PER_CREDIT = 1_000_000

MAX_CREDITS = 10**12
MAX_AMOUNT_UCR = MAX_CREDITS * _UCR_PER_CREDIT
MAX_RATE = 10**9
MAX_PRICE_USD_PER_M = 10**6
MAX_PRICE_UUSD_PER_M = MAX_PRICE_USD_PER_M * 1_000_000
MAX_TOKENS = 2**53 - 1
MAX_TOKENS_PER_EVENT = 10**9
MAX_TOPUP_OPTION_USD = 10_000
MIN_EVENT_YEAR = 2000
MAX_EVENT_YEAR = 2099

assert 2 * MAX_AMOUNT_UCR < INT64_MAX  # the design rests on it


def storable_amount(ucr: int) -> int | None:
    """``ucr`` if a column may hold it, else None (the reason text has the figure)."""
    return ucr if -MAX_AMOUNT_UCR <= ucr <= MAX_AMOUNT_UCR else None


def topup_credits_ucr(usd: int, credits_per_usd: int) -> int:
    """µcr that ``usd`` whole dollars buy at a rate (same as pricing.credits_for_cents)."""
    return usd * credits_per_usd * _UCR_PER_CREDIT


def oversized_topup(options_usd: Iterable[int], credits_per_usd: int) -> int | None:
    """The largest top-up option that would buy more than ``MAX_AMOUNT_UCR``, if any."""
    too_big = [
        usd for usd in options_usd if topup_credits_ucr(usd, credits_per_usd) > MAX_AMOUNT_UCR
    ]
    return max(too_big) if too_big else None


_SPLIT = _UCR_PER_CREDIT


def exact_sum(session: Session, column: Any, *where: Any) -> int:
    """``SUM(column)`` as an exact int, even where the total passes 64 bits.

    SQLite's SUM raises "integer overflow" past 64 bits. Summing the quotient
    and remainder by 10^6 separately (both databases truncate toward zero, so
    ``x == (x / 10^6) * 10^6 + x % 10^6`` for every row) keeps each partial sum
    a million times smaller; they are recombined here in Python.
    """
    high, low = session.execute(
        select(
            func.coalesce(func.sum(column // _SPLIT), 0),
            func.coalesce(func.sum(column % _SPLIT), 0),
        ).where(*where)
    ).one()
    return int(high) * _SPLIT + int(low)
