"""Concurrent debits from separate OS processes on one wallet.

4 processes x 500 debits, 10 % of them re-sending an event id that another
process owns (same payload), on a wallet funded for exactly 1,000 events:
exactly 1,000 are charged, each id at most once, the balance ends at 0 and
the ledger checks clean. Runs on SQLite (BEGIN IMMEDIATE, busy_timeout) and
on PostgreSQL (conditional UPDATE under READ COMMITTED, UNIQUE-race retry).
"""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core import usage_debits
from core.clock import utcnow
from core.db import Database
from core.errors import InsufficientCredits
from core.models import LedgerEntry, UsageEvent
from core.pricebook import PriceBookCache
from core.rawdb import RawCursor
from core.usage_one_statement import UserWallets
from tests.conftest import Billing, wait_until_blocked

pytestmark = pytest.mark.slow

PROCESSES = 4
PER_PROCESS = 500
DUPLICATES = PER_PROCESS // 10  # 10 % of each process's sends
FUNDED_EVENTS = 1000
COST = 4_500_000  # 1,000 in + 500 out of gpt-4o-mini at 10,000 credits/USD


def plan(worker: int) -> list[str]:
    """Event ids one process sends: its own, plus duplicates of a neighbour's."""
    own = [f"w{worker}-{n}" for n in range(PER_PROCESS - DUPLICATES)]
    neighbour = (worker + 1) % PROCESSES
    dups = [f"w{neighbour}-{n}" for n in range(DUPLICATES)]
    ids = own + dups
    random.Random(worker).shuffle(ids)
    return ids


def run_worker(worker: int, config: dict[str, Any], key_id: int) -> Counter[str]:
    """Child process: its own engine and caches, like a gunicorn worker (after
    its first report, a new event is decided alone: core.usage_one_statement)."""
    db = Database(config["DATABASE_URL"], schema=config.get("DATABASE_SCHEMA"))
    prices = PriceBookCache()
    wallets = UserWallets()
    outcomes: Counter[str] = Counter()
    try:
        for event_id in plan(worker):
            report = usage_debits.UsageReport(
                event_id, "shared@example.com", "gpt-4o-mini", 1000, 500
            )
            try:
                result = usage_debits.debit_usage(db, prices, key_id, report, wallets)
            except InsufficientCredits as exc:
                outcomes["rejected-duplicate" if exc.duplicate else "rejected"] += 1
            else:
                outcomes["duplicate" if result.duplicate else "charged"] += 1
    finally:
        db.dispose()
    return outcomes


def test_four_processes_debit_one_wallet_exactly(
    app: Flask, billing: Billing, db_config: dict[str, Any]
) -> None:
    billing.user("shared@example.com", FUNDED_EVENTS * COST)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        per_worker = pool.starmap(
            run_worker, [(w, db_config, billing.key_id) for w in range(PROCESSES)]
        )
    totals = sum(per_worker, Counter())

    distinct = PROCESSES * (PER_PROCESS - DUPLICATES)
    assert sum(totals.values()) == PROCESSES * PER_PROCESS
    assert totals["charged"] == FUNDED_EVENTS
    assert billing.balance("shared@example.com") == 0
    assert billing.problems() == []
    with billing.db.read_session() as s:
        statuses = dict(
            s.execute(select(UsageEvent.status, func.count()).group_by(UsageEvent.status)).all()
        )
        usage_entries = s.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "usage")
        )
        ids = s.scalar(select(func.count(func.distinct(UsageEvent.event_id))))
    assert statuses == {"charged": FUNDED_EVENTS, "rejected": distinct - FUNDED_EVENTS}
    assert usage_entries == FUNDED_EVENTS
    assert ids == distinct
    # Every re-sent id was answered from the stored result, never charged again.
    assert totals["duplicate"] + totals["rejected-duplicate"] == PROCESSES * DUPLICATES


@pytest.mark.parametrize("warm", [False, True], ids=["general", "decided-alone"])
def test_racing_the_same_event_id_answers_duplicate(
    app: Flask, billing: Billing, warm: bool
) -> None:
    """Transaction A has inserted event X but not committed when B reports X.

    B waits (SQLite: for the write lock at BEGIN IMMEDIATE; PostgreSQL: on
    the wallet's row or the UNIQUE index, then loses with a unique violation
    and goes the general way, or retries). Either way B's answer is the
    duplicate of A's charge, and X is charged once. ``warm``: B has reported
    before, so on PostgreSQL it tries the one-statement way first.
    """
    import threading

    from tests.conftest import USING_PG

    billing.user("race@example.com", 100 * 1_000_000)
    report = usage_debits.UsageReport("X", "race@example.com", "gpt-4o-mini", 1000, 500)
    wallets = UserWallets()
    answer: dict[str, Any] = {}
    if warm:
        before = usage_debits.UsageReport("W", "race@example.com", "gpt-4o-mini", 1000, 500)
        usage_debits.debit_usage(billing.db, billing.prices, billing.key_id, before, wallets)
        assert wallets.get("race@example.com") is not None

    def reporter_b() -> None:
        answer["b"] = usage_debits.debit_usage(
            billing.db, billing.prices, billing.key_id, report, wallets
        )

    b = threading.Thread(target=reporter_b)
    with billing.db.write() as session_a:
        cursor_a = RawCursor.of_session(session_a)
        [first] = usage_debits.charge(
            cursor_a, billing.prices, billing.key_id, usage_debits.prepare([report]), utcnow()
        )
        b.start()
        if USING_PG:  # hold A open until B is really blocked on A's row
            wait_until_blocked(billing.db.engine)
    b.join(timeout=30)
    assert first.status == "charged"
    assert answer["b"].duplicate is True
    assert answer["b"].balance_ucr == first.balance_ucr
    charged = 2 if warm else 1
    assert billing.balance("race@example.com") == 100 * 1_000_000 - charged * COST
    assert billing.problems() == []
