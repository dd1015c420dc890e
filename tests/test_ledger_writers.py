"""Every writer of ledger entries and wallet balances lives in ``core.ledger``
(the package: ``core/ledger/``).

The usage hot path writes through ``ledger.set_balances`` and
``ledger.post_usage_entries`` (one event on PostgreSQL: through
``ledger.charge_one_event``); these tests prove it goes through them, that no
other module in ``core`` writes either table's money columns, and what the two
functions do on a real database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import ledger, usage_debits
from core.accounts import find_user
from core.models import LedgerEntry
from core.rawdb import RawCursor
from tests.conftest import Billing

CR = 1_000_000
CORE = Path(__file__).resolve().parents[1] / "core"

# Ways to write an entry or a balance: raw SQL, SQLAlchemy Core, the ORM.
WRITES = [
    re.compile(r"INSERT\s+INTO\s+ledger_entries", re.IGNORECASE),
    # (holds move wallets.reserved_ucr, which is not a balance: core.holds)
    re.compile(r"UPDATE\s+wallets\s+SET\s+balance_ucr", re.IGNORECASE),
    re.compile(r"insert\(\s*LedgerEntry\b"),
    re.compile(r"(?<!class )\bLedgerEntry\("),
    re.compile(r"\bbalance_ucr\s*=(?!=|0\))"),  # a new wallet starts at 0
    re.compile(r"\bbalance_ucr\s*[+-]="),
]


def test_no_module_in_core_but_the_ledger_writes_entries_or_balances() -> None:
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        if path.relative_to(CORE).parts[0] == "ledger":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(pattern.search(line) for pattern in WRITES):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Record the calls to ``ledger.<name>`` and still run the real function."""
    calls: list[Any] = []
    real: Callable[..., None] = getattr(ledger, name)

    def recording(cur: Any, rows: Any, *args: Any) -> None:
        calls.append(list(rows))
        real(cur, rows, *args)

    monkeypatch.setattr(ledger, name, recording)
    return calls


def in_raw_write(billing: Billing, work: Callable[[RawCursor], None]) -> None:
    with billing.db.raw_write() as cur:
        work(cur)


def _wallet(billing: Billing, email: str) -> int:
    with billing.db.read_session() as s:
        return find_user(s, email).wallet.id


def test_single_and_batch_usage_debits_go_through_the_ledger(
    billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    billing.user("ann@example.com", 20 * CR)
    billing.user("bob@example.com", 10 * CR)
    wallets = {e: _wallet(billing, e) for e in ("ann@example.com", "bob@example.com")}
    balances = _spy(monkeypatch, "set_balances")
    entries = _spy(monkeypatch, "post_usage_entries")
    single: list[Any] = []
    real_single = ledger.charge_one_event

    def one_statement(
        cur: RawCursor, change: ledger.BalanceChange, *args: Any, **kwargs: Any
    ) -> int:
        single.append(change)
        return real_single(cur, change, *args, **kwargs)

    monkeypatch.setattr(ledger, "charge_one_event", one_statement)

    one = billing.debit("s1", "ann@example.com")
    change = ledger.BalanceChange(wallets["ann@example.com"], 20 * CR, one.balance_ucr)
    if billing.db.is_sqlite:
        assert (balances, single) == ([[change]], [])
        [[entry]] = entries
        assert (entry.wallet_id, entry.amount_ucr, entry.balance_after_ucr) == (
            wallets["ann@example.com"],
            -one.cost_ucr,
            one.balance_ucr,
        )
    else:  # one statement writes the balance, the event, its entry and the rollup
        assert (balances, entries, single) == ([], [], [change])
    with billing.db.read_session() as s:
        entry = s.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc())).first()
        assert entry is not None
        assert (entry.wallet_id, entry.amount_ucr, entry.balance_after_ucr, entry.kind) == (
            wallets["ann@example.com"],
            -one.cost_ucr,
            one.balance_ucr,
            "usage",
        )

    balances.clear()
    entries.clear()
    reports = [
        usage_debits.UsageReport("b1", "ann@example.com", "gpt-4o-mini", 1000, 500),
        usage_debits.UsageReport("b2", "bob@example.com", "gpt-4o-mini", 1000, 500),
        usage_debits.UsageReport("b3", "ann@example.com", "nope", 1, 1),  # rejected
        usage_debits.UsageReport("b4", "ann@example.com", "gpt-4o-mini", 1000, 500),
    ]
    results = usage_debits.debit_usage_batch(billing.db, billing.prices, billing.key_id, reports)
    assert [r.status for r in results] == ["charged", "charged", "rejected", "charged"]
    assert sorted(balances[0]) == sorted(
        [
            ledger.BalanceChange(
                wallets["ann@example.com"], one.balance_ucr, results[3].balance_ucr
            ),
            ledger.BalanceChange(wallets["bob@example.com"], 10 * CR, results[1].balance_ucr),
        ]
    )
    assert [e.balance_after_ucr for e in entries[0]] == [
        results[0].balance_ucr,
        results[1].balance_ucr,
        results[3].balance_ucr,
    ]

    # A replay changes nothing, so nothing is written.
    balances.clear()
    entries.clear()
    assert billing.debit("s1", "ann@example.com").duplicate
    assert balances == [[]] and entries == [[]]
    assert billing.problems() == []


def test_set_balances_and_post_usage_entries_write_a_consistent_ledger(billing: Billing) -> None:
    billing.user("cat@example.com", 10 * CR)
    wallet = _wallet(billing, "cat@example.com")
    at = datetime(2026, 1, 2, 3, 4, 5, 678901)
    with billing.db.raw_write() as cur:
        ledger.set_balances(cur, [ledger.BalanceChange(wallet, 10 * CR, 7 * CR)])
        ledger.post_usage_entries(
            cur,
            [
                ledger.UsageEntry(wallet, -2 * CR, 8 * CR, "usage:test-1", 10_000, "one"),
                ledger.UsageEntry(wallet, -1 * CR, 7 * CR, "usage:test-2", 10_000, "two"),
            ],
            at,
        )
    assert billing.balance("cat@example.com") == 7 * CR
    with billing.db.read_session() as s:
        rows = s.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "usage").order_by(LedgerEntry.id)
        ).all()
    assert [(r.amount_ucr, r.balance_after_ucr, r.reference, r.memo) for r in rows] == [
        (-2 * CR, 8 * CR, "usage:test-1", "one"),
        (-1 * CR, 7 * CR, "usage:test-2", "two"),
    ]
    assert all((r.wallet_id, r.credits_per_usd, r.created_at) == (wallet, 10_000, at) for r in rows)
    # The ledger sums to the balance; only the usage-vs-events cross-check
    # notices there are no usage events behind these entries.
    assert [p.what for p in billing.problems()] == ["usage ledger != charged events"]


def test_set_balances_refuses_a_stale_balance_and_nothing_is_written(billing: Billing) -> None:
    billing.user("dan@example.com", 10 * CR)
    wallet = _wallet(billing, "dan@example.com")

    def stale(cur: RawCursor) -> None:
        entry = ledger.UsageEntry(wallet, -CR, 9 * CR, "usage:stale", 10_000, "")
        ledger.post_usage_entries(cur, [entry], datetime.now())
        ledger.set_balances(cur, [ledger.BalanceChange(wallet, 11 * CR, 9 * CR)])

    with pytest.raises(ledger.StaleBalance):
        in_raw_write(billing, stale)
    assert billing.balance("dan@example.com") == 10 * CR
    with billing.db.read_session() as s:
        assert s.scalar(select(LedgerEntry.id).where(LedgerEntry.kind == "usage")) is None
    assert billing.problems() == []


def test_a_usage_entry_is_posted_once_per_reference(billing: Billing) -> None:
    billing.user("eve@example.com")
    wallet = _wallet(billing, "eve@example.com")
    entry = ledger.UsageEntry(wallet, 0, 0, "usage:once", 10_000, "")
    with billing.db.raw_write() as cur:
        ledger.post_usage_entries(cur, [entry], datetime.now())
    with pytest.raises(billing.db.dbapi_integrity_error):
        in_raw_write(billing, lambda cur: ledger.post_usage_entries(cur, [entry], datetime.now()))
    with billing.db.raw_write() as cur:
        ledger.set_balances(cur, [])  # nothing to do
        ledger.post_usage_entries(cur, [], datetime.now())
    with billing.db.read_session() as s:
        assert len(s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "usage")).all()) == 1
