"""Usage debits: price each reported event and charge it exactly once.

This is the ingest hot path, so it runs hand-written SQL on the DBAPI cursor
(``core.rawdb``) and does the same work for one event or a thousand: a fixed
number of statements per request plus one row per event and table.

One transaction per request
---------------------------
1. ``config_version``: the cached price book is reused unless a rate, price
   or setting changed (``core.pricebook``).
2. The request's event ids already stored for this integration key (a replay
   returns the stored outcome; a reused id with another payload is a
   conflict). Steps 1 and 2 are one statement, which also reads the
   integration key: one revoked since the request authenticated (the API
   remembers keys it has seen, ``core.recent_keys``) is refused
   with ``KeyRevoked`` and nothing is written.
3. The users and wallets named by the events, with their balances. On
   SQLite the transaction began ``IMMEDIATE``, so no other writer can move a
   balance until we commit; PostgreSQL takes the wallet rows ``FOR UPDATE``
   (in id order, so two batches cannot deadlock). On PostgreSQL this query,
   step 1's and the BEGIN take one round trip (``RawCursor.execute_all``).
4. In Python, in request order (``core.usage_writes.RequestWrites``): price
   each event with the exact integer formula, apply the checks (user, model,
   caps) and debit the balance we hold unless the available credits (balance
   − what running calls reserved, ``core.holds``) would go below
   ``-overdraft_limit``. An event repeated inside the request replays its
   first occurrence.
5. Write: the new balances (``core.ledger.set_balances``: a compare-and-set
   on the balance read in 3, so a lost lock would fail loudly instead of
   double-spending), one ``usage_events`` row per event (charged or
   rejected), one ``usage`` ledger entry per charge
   (``core.ledger.post_usage_entries``), the ``usage_daily`` rollups
   (``core.usage_rollups``), and a notification per refusal for insufficient
   credits. Neither module writes a balance or a ledger entry itself.

The usual request on PostgreSQL, one new event that will be charged, skips
steps 1-4: it is decided from what the process has cached and written by one
statement that checks it all again (``core.usage_one_statement``), or goes
this way.

The ledger invariants of ``core.ledger`` hold after every commit: each balance
change has its entry (``reference = 'usage:<event pk>'``) in the same
transaction, and ``usage_events`` is UNIQUE on (integration key, event id).
On PostgreSQL two transactions inserting the same new event id collide on that
constraint; the loser rolls back and retries, finds the winner's row and
answers as a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core import metrics
from core.clock import utcnow
from core.db import Database, retry_lost_races
from core.enums import UsageStatus
from core.errors import REJECTIONS, Conflict, KeyRevoked, UsageRejected
from core.pricebook import PriceBookCache
from core.rawdb import RawCursor, Statement
from core.usage_one_statement import UserWallets, charge_alone
from core.usage_reports import PreparedReport, UsageReport, UsageResult, prepare
from core.usage_writes import Account, RequestWrites, StoredEvent

# --- entry points ---------------------------------------------------------------


def debit_usage(
    db: Database,
    prices: PriceBookCache,
    integration_key_id: int,
    report: UsageReport,
    wallets: UserWallets | None = None,
) -> UsageResult:
    """Price and debit one usage event, exactly once.

    Returns the result for a charge (``duplicate`` on replay). Raises
    ``Conflict`` for a reused id with another payload, and a ``UsageRejected``
    subclass (after committing the rejected event) when it cannot be charged.

    With ``wallets`` (the process's ``UserWallets``), a new event that will
    be charged takes one statement on PostgreSQL
    (``core.usage_one_statement``); anything else goes the general way.
    """
    [prepared] = prepare([report])
    if wallets is not None:
        result = charge_alone(db, prices, wallets, integration_key_id, prepared, utcnow())
        if result is not None:
            metrics.count_usage([(False, False, result.cost_ucr)])
            return result
    [result] = _debit_prepared(db, prices, integration_key_id, [prepared], wallets)
    if result.error is not None:
        raise result.error
    return result


def debit_usage_batch(
    db: Database,
    prices: PriceBookCache,
    integration_key_id: int,
    reports: Sequence[UsageReport],
    wallets: UserWallets | None = None,
) -> list[UsageResult]:
    """Many events in one transaction; one result each, in order, never raising
    for a single event's rejection or conflict. A lost UNIQUE race (PostgreSQL)
    runs the transaction again, which then answers from the winner's rows.
    ``wallets`` learns the users and wallets read."""
    return _debit_prepared(db, prices, integration_key_id, prepare(reports), wallets)


def _debit_prepared(
    db: Database,
    prices: PriceBookCache,
    integration_key_id: int,
    prepared: list[PreparedReport],
    wallets: UserWallets | None,
) -> list[UsageResult]:
    """``debit_usage_batch`` for reports already prepared."""
    if not prepared:
        return []
    results = retry_lost_races(
        db.raw_write,
        lambda cur: charge(
            cur, prices, integration_key_id, prepared, utcnow(), commit=True, wallets=wallets
        ),
        db.dbapi_integrity_error,
    )
    metrics.count_usage((r.error is not None, r.duplicate, r.cost_ucr) for r in results)
    return results


# --- the transaction ------------------------------------------------------------


def charge(
    cur: RawCursor,
    prices: PriceBookCache,
    key_id: int,
    reports: Sequence[PreparedReport],
    now: datetime,
    *,
    commit: bool = False,
    wallets: UserWallets | None = None,
) -> list[UsageResult]:
    """Steps 1-5 of the module docstring, in the caller's write transaction.
    ``commit``: that transaction ends here (on PostgreSQL the last statement
    then carries its COMMIT: ``RawCursor.execute_all``). ``wallets`` learns
    the users and wallets read."""
    stored_sql = _stored_query(cur, key_id, [p.report.event_id for p in reports])
    accounts_sql = _accounts_query(cur, [p.email for p in reports])
    version_rows, account_rows = cur.execute_all([stored_sql, accounts_sql])
    if not version_rows:
        raise KeyRevoked("This integration key has been revoked.")
    version = version_rows[0][0]
    stored = {row[1]: StoredEvent(*row[2:]) for row in version_rows if row[1] is not None}
    book = prices.at_version(cur, version)
    accounts = {
        email: Account(uid, bool(disabled), wid, bal, reserved)
        for email, uid, disabled, wid, bal, reserved in account_rows
    }
    if wallets is not None:
        for email, account in accounts.items():
            wallets.remember(email, account.user_id, account.wallet_id)
    writes = RequestWrites(cur, key_id, book, now, accounts)
    results: list[UsageResult] = []
    for prepared in reports:
        event_id = prepared.report.event_id
        previous = stored.get(event_id)
        if previous is not None:
            results.append(_replay(event_id, prepared.payload_hash, previous))
            continue
        result, stored[event_id] = writes.add(prepared)  # a repeat in this request replays it
        results.append(result)
    writes.flush(commit=commit)
    return results


def _stored_query(cur: RawCursor, key_id: int, event_ids: list[str]) -> Statement:
    """Steps 1 and 2 as one query: ``config_version`` and the request's event
    ids already stored for this key (``config_version`` has one row). No row
    at all: the key is no longer active."""
    where, params = cur.is_one_of("e.event_id", "event_id", event_ids)
    return (
        "SELECT v.version, e.event_id, e.payload_hash, e.status, e.reason_code, e.reason,"
        " e.cost_ucr, e.balance_after_ucr FROM config_version v"
        " JOIN integration_keys k ON k.id = :key_id AND k.revoked_at IS NULL"
        f" LEFT JOIN usage_events e ON e.integration_key_id = :key_id AND {where}",
        {"key_id": key_id, **params},
    )


def _accounts_query(cur: RawCursor, emails: list[str]) -> Statement:
    """Step 3 as a query: the users and wallets named (PostgreSQL locks the
    wallets, in id order), replayed events' too: it goes out with step 1's."""
    where, params = cur.is_one_of("u.email", "email", emails)
    lock = "" if cur.is_sqlite else " FOR UPDATE OF w"
    return (
        "SELECT u.email, u.id, u.is_disabled, w.id, w.balance_ucr, w.reserved_ucr"
        " FROM users u JOIN wallets w ON w.user_id = u.id"
        f" WHERE {where} ORDER BY w.id{lock}",
        params,
    )


def _replay(event_id: str, payload_hash: str, row: StoredEvent) -> UsageResult:
    if row.payload_hash != payload_hash:
        conflict = Conflict(
            f"Event {event_id!r} was already reported with a different payload.",
            event_id=event_id,
        )
        return UsageResult(event_id, UsageStatus.REJECTED, False, 0, None, conflict)
    if row.status == UsageStatus.CHARGED:
        return UsageResult(
            event_id, UsageStatus.CHARGED, True, row.cost_ucr or 0, row.balance_after_ucr
        )
    error_cls = REJECTIONS.get(row.reason_code or "", UsageRejected)
    error = error_cls(row.reason or "Rejected.", event_id=event_id, duplicate=True)
    return UsageResult(event_id, UsageStatus.REJECTED, True, 0, None, error)
