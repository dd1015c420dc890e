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
4. In Python, in request order: price each event with the exact integer
   formula, apply the checks (user, model, caps) and debit the balance we hold
   unless the available credits (balance − what running calls reserved,
   ``core.holds``) would go below ``-overdraft_limit``. An event repeated inside the
   request replays its first occurrence.
5. Write: the new balances (``core.ledger.set_balances``: a compare-and-set
   on the balance read in 3, so a lost lock would fail loudly instead of
   double-spending), one ``usage_events`` row per event (charged or
   rejected), one ``usage`` ledger entry per charge
   (``core.ledger.post_usage_entries``), the ``usage_daily`` rollups, and a
   notification per refusal for insufficient credits. This module never
   writes a balance or a ledger entry itself.

The ledger invariants of ``core.ledger`` hold after every commit: each balance
change has its entry (``reference = 'usage:<event pk>'``) in the same
transaction, and ``usage_events`` is UNIQUE on (integration key, event id).
On PostgreSQL two transactions inserting the same new event id collide on that
constraint; the loser rolls back and retries, finds the winner's row and
answers as a duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any

from core import ledger, metrics, outbox
from core.accounts import normalise_email
from core.bounds import storable_amount
from core.clock import utcnow
from core.db import Database, retry_lost_races
from core.enums import UsageStatus
from core.errors import (
    REJECTIONS,
    Conflict,
    DomainError,
    InsufficientCredits,
    KeyRevoked,
    LimitExceeded,
    ModelDisabled,
    UnknownModel,
    UnknownUsageUser,
    UsageRejected,
    UserDisabled,
)
from core.pricebook import ModelPrice, PriceBook, PriceBookCache
from core.pricing import format_credits, usage_cost_ucr
from core.rawdb import RawCursor, Statement


@dataclass(frozen=True)
class UsageReport:
    """One usage event as an integration reports it (already type-checked)."""

    event_id: str
    user: str
    model: str
    input_tokens: int
    output_tokens: int
    conversation_id: str | None = None
    occurred_at: datetime | None = None

    def payload_hash(self) -> str:
        """What makes two reports with one event id "the same payload".

        The SHA-256 of the compact JSON array ``[user, model, input tokens,
        output tokens, conversation id, occurred at]``, built with the json
        module's own string encoder: byte for byte ``json.dumps(...,
        separators=(",", ":"))`` without its per-call overhead, which showed
        in batch ingest. Stored hashes depend on this exact text.
        """
        occurred = self.occurred_at.isoformat() if self.occurred_at else None
        conversation = self.conversation_id
        canonical = (
            f"[{_json_str(normalise_email(self.user))},{_json_str(self.model)},"
            f"{self.input_tokens:d},{self.output_tokens:d},"
            f"{'null' if conversation is None else _json_str(conversation)},"
            f"{'null' if occurred is None else _json_str(occurred)}]"
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class UsageResult:
    """The outcome for one event: charged, or rejected with ``error`` set."""

    event_id: str
    status: UsageStatus
    duplicate: bool
    cost_ucr: int
    balance_ucr: int | None
    error: DomainError | None = None


@dataclass(frozen=True)
class PreparedReport:
    """A report with what needs no database: its normalised email and hash.

    Prepared before the write transaction begins, so the write lock is held
    for as little Python as possible.
    """

    report: UsageReport
    email: str
    payload_hash: str


def prepare(reports: Sequence[UsageReport]) -> list[PreparedReport]:
    return [PreparedReport(r, normalise_email(r.user), r.payload_hash()) for r in reports]


@dataclass(frozen=True)
class _Stored:
    """What a replay needs to know about a stored event."""

    payload_hash: str
    status: str
    reason_code: str | None
    reason: str | None
    cost_ucr: int | None
    balance_after_ucr: int | None


@dataclass(frozen=True)
class _Account:
    user_id: int
    is_disabled: bool
    wallet_id: int
    balance_ucr: int
    reserved_ucr: int  # held for running calls (core.holds): not spendable here


# --- entry points ---------------------------------------------------------------


def debit_usage(
    db: Database, prices: PriceBookCache, integration_key_id: int, report: UsageReport
) -> UsageResult:
    """Price and debit one usage event, exactly once.

    Returns the result for a charge (``duplicate`` on replay). Raises
    ``Conflict`` for a reused id with another payload, and a ``UsageRejected``
    subclass (after committing the rejected event) when it cannot be charged.
    """
    [result] = debit_usage_batch(db, prices, integration_key_id, [report])
    if result.error is not None:
        raise result.error
    return result


def debit_usage_batch(
    db: Database,
    prices: PriceBookCache,
    integration_key_id: int,
    reports: Sequence[UsageReport],
) -> list[UsageResult]:
    """Many events in one transaction; one result each, in order, never raising
    for a single event's rejection or conflict. A lost UNIQUE race (PostgreSQL)
    runs the transaction again, which then answers from the winner's rows."""
    if not reports:
        return []
    prepared = prepare(reports)
    results = retry_lost_races(
        db.raw_write,
        lambda cur: charge(cur, prices, integration_key_id, prepared, utcnow()),
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
) -> list[UsageResult]:
    """Steps 1-5 of the module docstring, in the caller's write transaction."""
    stored_sql = _stored_query(cur, key_id, [p.report.event_id for p in reports])
    accounts_sql = _accounts_query(cur, [p.email for p in reports])
    version_rows, account_rows = cur.execute_all([stored_sql, accounts_sql])
    if not version_rows:
        raise KeyRevoked("This integration key has been revoked.")
    version = version_rows[0][0]
    stored = {row[1]: _Stored(*row[2:]) for row in version_rows if row[1] is not None}
    book = prices.at_version(cur, version)
    accounts = {
        email: _Account(uid, bool(disabled), wid, bal, reserved)
        for email, uid, disabled, wid, bal, reserved in account_rows
    }
    writes = _Writes(cur, key_id, book, now, accounts)
    results: list[UsageResult] = []
    for prepared in reports:
        event_id = prepared.report.event_id
        previous = stored.get(event_id)
        if previous is not None:
            results.append(_replay(event_id, prepared.payload_hash, previous))
            continue
        result, stored[event_id] = writes.add(prepared)  # a repeat in this request replays it
        results.append(result)
    writes.flush()
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


def _replay(event_id: str, payload_hash: str, row: _Stored) -> UsageResult:
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


def _precheck(
    report: UsageReport,
    account: _Account | None,
    model: ModelPrice | None,
    cost: int | None,
    book: PriceBook,
) -> UsageRejected | None:
    """The reasons an event is refused before any balance is considered."""
    eid = report.event_id
    limits = book.settings
    if account is None:
        return UnknownUsageUser(f"No user with email {report.user!r}.", event_id=eid)
    if account.is_disabled:
        return UserDisabled("This user's account is disabled.", event_id=eid)
    if model is None or cost is None:
        return UnknownModel(f"Unknown model {report.model!r}.", event_id=eid)
    if not model.enabled:
        return ModelDisabled(f"Model {report.model!r} is disabled.", event_id=eid)
    tokens = report.input_tokens + report.output_tokens
    if tokens > limits.max_tokens_per_event:
        return LimitExceeded(
            f"{tokens} tokens exceed the cap of {limits.max_tokens_per_event} per event.",
            event_id=eid,
        )
    if cost > limits.max_credits_per_event_ucr:
        return LimitExceeded(
            f"{format_credits(cost)} credits exceed the cap of "
            f"{format_credits(limits.max_credits_per_event_ucr)} per event.",
            event_id=eid,
        )
    return None


class _Writes:
    """Decides each new event against the balances held, and collects its rows."""

    def __init__(
        self,
        cur: RawCursor,
        key_id: int,
        book: PriceBook,
        now: datetime,
        accounts: dict[str, _Account],
    ) -> None:
        self.cur = cur
        self.key_id = key_id
        self.book = book
        self.now = now
        self.accounts = accounts
        self.balances = {a.wallet_id: a.balance_ucr for a in accounts.values()}
        self.events: list[dict[str, Any]] = []
        self.charges: list[tuple[int, int, int, str]] = []  # (event index, wallet, cost, memo)
        self.rollups: dict[tuple[int, int], list[int]] = {}  # (user, model) -> sums
        self.notifications: list[dict[str, Any]] = []
        self.refusals: list[dict[str, Any]] = []  # for core.outbox
        self._now_db = cur.db_value(now)

    def add(self, prepared: PreparedReport) -> tuple[UsageResult, _Stored]:
        """Decide one new event; its result, and what a replay of it must say."""
        book = self.book
        report, payload_hash = prepared.report, prepared.payload_hash
        account = self.accounts.get(prepared.email)
        model = book.models.get(report.model)
        cost = None
        if model is not None:
            cost = usage_cost_ucr(
                report.input_tokens,
                report.output_tokens,
                model.input_uusd_per_m,
                model.output_uusd_per_m,
                book.credits_per_usd,
            )
        error = _precheck(report, account, model, cost, book)
        balance: int | None = None
        if error is None:
            assert account is not None
            assert cost is not None
            assert model is not None
            held = self.balances[account.wallet_id]
            if held - account.reserved_ucr - cost >= -book.settings.overdraft_limit_ucr:
                balance = held - cost
                self.balances[account.wallet_id] = balance
                self._charged(report, account, model, cost)
            else:
                error = self._refused(report, account, cost)
        status = UsageStatus.REJECTED if error else UsageStatus.CHARGED
        reason_code, reason = (error.code, error.message) if error else (None, None)
        self.events.append(
            {
                "integration_key_id": self.key_id,
                "event_id": report.event_id,
                "payload_hash": payload_hash,
                "user_ref": report.user,
                "user_id": account.user_id if account else None,
                "model_name": report.model,
                "model_id": model.id if model else None,
                "input_tokens": report.input_tokens,
                "output_tokens": report.output_tokens,
                # Over a cap, tokens x price x rate may pass 64 bits; the
                # reason states it, the column keeps only what fits (core.bounds).
                "cost_ucr": None if cost is None else storable_amount(cost),
                "status": status,
                "reason_code": reason_code,
                "reason": reason,
                "credits_per_usd": book.credits_per_usd,
                "input_price_uusd_per_m": model.input_uusd_per_m if model else None,
                "output_price_uusd_per_m": model.output_uusd_per_m if model else None,
                "rate_version_id": book.rate_version_id,
                "price_version_id": model.price_version_id if model else None,
                "balance_after_ucr": balance,
                "conversation_id": report.conversation_id,
                "occurred_at": self.cur.db_value(report.occurred_at) or self._now_db,
                "received_at": self._now_db,
            }
        )
        stored = _Stored(payload_hash, status, reason_code, reason, cost, balance)
        if error is not None:
            return UsageResult(report.event_id, UsageStatus.REJECTED, False, 0, None, error), stored
        assert cost is not None
        return UsageResult(report.event_id, UsageStatus.CHARGED, False, cost, balance), stored

    def _charged(
        self, report: UsageReport, account: _Account, model: ModelPrice, cost: int
    ) -> None:
        memo = f"{report.model}: {report.input_tokens} in / {report.output_tokens} out"
        self.charges.append((len(self.events), account.wallet_id, cost, memo))
        sums = self.rollups.setdefault((account.user_id, model.id), [0, 0, 0, 0])
        sums[0] += 1
        sums[1] += report.input_tokens
        sums[2] += report.output_tokens
        sums[3] += cost

    def _refused(self, report: UsageReport, account: _Account, cost: int) -> UsageRejected:
        self.notifications.append(
            {
                "user_id": account.user_id,
                "message": (
                    f"A {report.model} request costing {format_credits(cost)} credits "
                    "was refused because your balance is too low. Top up to continue."
                ),
                "created_at": self._now_db,
            }
        )
        self.refusals.append(
            {
                "user_id": account.user_id,
                "email": normalise_email(report.user),
                "event_id": report.event_id,
                "model": report.model,
                "cost_ucr": storable_amount(cost),
            }
        )
        return InsufficientCredits(
            f"This event costs {format_credits(cost)} credits; the balance is too low.",
            event_id=report.event_id,
            cost=format_credits(cost),
        )

    def flush(self) -> None:
        cur = self.cur
        changes = [
            ledger.BalanceChange(a.wallet_id, a.balance_ucr, self.balances[a.wallet_id])
            for a in self.accounts.values()
            if self.balances[a.wallet_id] != a.balance_ucr
        ]
        if not cur.is_sqlite and len(self.events) == len(self.charges) == len(changes) == 1:
            # The usual request on PostgreSQL: one statement (core.ledger.charge_one_event).
            ledger.charge_one_event(
                cur,
                changes[0],
                self.events[0],
                self.charges[0][3],
                rollup_upsert(cur, self.now, self.rollups),
            )
            return
        ledger.set_balances(cur, changes)
        event_pks = cur.insert_with_ids("usage_events", self.events)
        rate = self.book.credits_per_usd
        ledger.post_usage_entries(
            cur,
            [
                ledger.UsageEntry(
                    wallet_id,
                    -cost,
                    self.events[index]["balance_after_ucr"],
                    f"usage:{event_pks[index]}",
                    rate,
                    memo,
                )
                for index, wallet_id, cost, memo in self.charges
            ],
            self.now,
        )
        add_to_rollups(cur, self.now, self.rollups)
        cur.executemany(_INSERT_NOTIFICATION, self.notifications)
        outbox.usage_rejected(cur, self.refusals)


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
    parameters, for a caller that folds it into its own (``core.ledger``)."""
    (row,) = _rollup_rows(cur.db_value(now.date()), rollups)
    return _UPSERT_ROLLUP, row


def add_to_rollups(
    cur: RawCursor, now: datetime, rollups: Mapping[tuple[int, int], Sequence[int]]
) -> None:
    """Add charged events to ``usage_daily``: (user, model) -> [events, input
    tokens, output tokens, cost]. In the transaction that charges them (every
    path that writes a charged usage event calls this)."""
    cur.executemany(_UPSERT_ROLLUP, _rollup_rows(cur.db_value(now.date()), rollups))


_UPSERT_ROLLUP = (
    "INSERT INTO usage_daily (user_id, day, model_id, events, input_tokens, output_tokens,"
    " cost_ucr) VALUES (:user_id, :day, :model_id, :events, :input_tokens, :output_tokens,"
    " :cost_ucr) ON CONFLICT (user_id, day, model_id) DO UPDATE SET"
    " events = usage_daily.events + excluded.events,"
    " input_tokens = usage_daily.input_tokens + excluded.input_tokens,"
    " output_tokens = usage_daily.output_tokens + excluded.output_tokens,"
    " cost_ucr = usage_daily.cost_ucr + excluded.cost_ucr"
)
_INSERT_NOTIFICATION = (
    "INSERT INTO notifications (user_id, kind, message, created_at)"
    " VALUES (:user_id, 'usage_rejected', :message, :created_at)"
)
