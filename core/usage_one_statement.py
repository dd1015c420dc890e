"""The usage API's usual request on PostgreSQL: one event, one statement.

Why
---
Under load the usage API's throughput on PostgreSQL is set by the workers'
CPU, and each round trip costs a worker its psycopg pipeline work and the
server a wake-up. The general way (``core.usage_debits.charge``) reads the
key, the stored events, the user and the locked wallet in one round trip,
decides in Python, and writes in a second. The usual request (one new event
that will be charged) needs no reads: what it is decided on is already in
the process.

How
---
Before any transaction, the event is priced and checked against the price
book the process has cached (its model, the per-event caps), for the user
and wallet the process last saw under the event's email (``UserWallets``,
filled by the general way). One statement then checks again everything the
decision rests on, and writes only if all of it holds
(``core.ledger.charge_one_event_if``):

* ``config_version`` is still the cached book's version (prices, the rate,
  the overdraft limit and the caps are the ones it was decided with);
* the integration key is still active;
* the user still has this email and this wallet, and is not disabled;
* this key has not stored this event id yet;
* the wallet's available credits cover the charge (balance − reserved −
  cost ≥ −overdraft), checked by the wallet's UPDATE itself, so on the
  latest committed values when other transactions charged it first.

The statement is its own transaction (PostgreSQL commits it in autocommit):
one round trip. If it writes nothing, the event goes the general way, which
decides it at the current state: a replay, a refusal (stored with its
reason and notification), a changed price, an unknown user. So does a
collision on the event id with a request that stored it meanwhile (the
statement fails as a whole; the general way answers from the winner's row),
and every request on SQLite, where a statement costs no round trip.
"""

from __future__ import annotations

from datetime import datetime

from core import ledger
from core.db import Database
from core.enums import UsageStatus
from core.pricebook import PriceBookCache
from core.usage_reports import PreparedReport, UsageResult
from core.usage_rollups import rollup_upsert
from core.usage_writes import event_cost, event_refusal, event_row, usage_memo

# The guard of ``charge_one_event_if`` (``wallets`` is the wallet's row).
_STILL_AS_DECIDED = (
    "EXISTS (SELECT 1 FROM config_version v, integration_keys k, users u"
    " WHERE v.version = :version AND k.id = :key_id AND k.revoked_at IS NULL"
    " AND u.id = wallets.user_id AND u.id = :uid AND u.email = :email"
    " AND NOT u.is_disabled)"
    " AND NOT EXISTS (SELECT 1 FROM usage_events e"
    " WHERE e.integration_key_id = :key_id AND e.event_id = :event_id)"
)


class UserWallets:
    """The user and wallet ids last read for an email, in this process (one
    per app; thread-safe). Only a hint: the statement that uses them checks
    them again."""

    MAX_SIZE = 10_000  # then it starts again empty

    def __init__(self) -> None:
        self._ids: dict[str, tuple[int, int]] = {}

    def get(self, email: str) -> tuple[int, int] | None:
        return self._ids.get(email)

    def remember(self, email: str, user_id: int, wallet_id: int) -> None:
        if len(self._ids) >= self.MAX_SIZE:
            self._ids.clear()
        self._ids[email] = (user_id, wallet_id)


def charge_alone(
    db: Database,
    prices: PriceBookCache,
    wallets: UserWallets,
    key_id: int,
    prepared: PreparedReport,
    now: datetime,
) -> UsageResult | None:
    """Charge ``prepared`` in one statement (see module); its result, or None
    when it must go the general way (nothing was written)."""
    book = prices.cached
    ids = wallets.get(prepared.email)
    if db.is_sqlite or book is None or ids is None:
        return None
    report = prepared.report
    model = book.models.get(report.model)
    cost = event_cost(report, model, book)
    if model is None or cost is None or event_refusal(report, model, cost, book) is not None:
        return None
    user_id, wallet_id = ids
    guard = {
        "version": book.version,
        "key_id": key_id,
        "uid": user_id,
        "email": prepared.email,
        "event_id": report.event_id,
    }
    try:
        with db.raw_write() as cur:
            event = event_row(
                cur, key_id, book, prepared, user_id, model, cost, None, None, cur.db_value(now)
            )
            rollup = rollup_upsert(
                cur,
                now,
                {(user_id, model.id): (1, report.input_tokens, report.output_tokens, cost)},
            )
            balance = ledger.charge_one_event_if(
                cur,
                wallet_id,
                cost,
                book.settings.overdraft_limit_ucr,
                (_STILL_AS_DECIDED, guard),
                event,
                usage_memo(report),
                rollup,
            )
    except db.dbapi_integrity_error:  # the event id, stored meanwhile by another request
        return None
    if balance is None:
        return None
    return UsageResult(report.event_id, UsageStatus.CHARGED, False, cost, balance)
