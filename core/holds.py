"""Holds: two-phase debits for calls whose cost is known only afterwards.

Design
------
Before the gateway (or a chat turn) calls an upstream, it *takes a hold*: it
reserves the call's worst-case cost on the wallet. Afterwards the hold is
*settled* (the real cost is charged, at most the hold, and the rest freed),
*released* (nothing charged) or, if nobody closes it in time (the process
died mid-call), *expires* (released; admins see it).

A wallet keeps ``balance_ucr`` (changed only by ``core.ledger``) and
``reserved_ucr``, the sum of its active holds. **Available = balance −
reserved**, and every debit path that checks funds checks available: holds,
the usage API and admin negative adjustments, so reported usage cannot spend
what running calls reserved.

A hold snapshots the rate and the model's prices; its settlement prices the
reported tokens with that snapshot, so an admin's edit mid-call cannot make
the charge exceed the hold. The charge is ``min(actual, hold)``; the rest of
the actual cost is the *shortfall*, recorded on the hold for admins. Holds are
not ledger entries: only a settle's charge is, as a ``usage`` entry explained
by the usage event it writes (``hold_id`` set), through the ledger's own
raw-cursor writer ``core.ledger.settle_charge``.

A hold may go through a user's key (``user_api_keys``): the key's
``reserved_ucr`` and ``spent_ucr`` move in the same transactions, and a key
with a limit refuses a hold that would take ``spent + reserved`` past it.

Invariants (``core.hold_checks`` and ``flask check-ledger``):

1. For every wallet, ``reserved_ucr`` = the sum of its active holds; for every
   key, ``reserved_ucr`` = the sum of its active holds and ``spent_ucr`` = the
   sum of its settled holds' charges.
2. A hold leaves ``active`` exactly once: every change of state is
   ``UPDATE … WHERE id = ? AND status = 'active'`` and only the statement that
   changed the row goes on to move money.
3. One usage event per settled hold (UNIQUE ``usage_events.hold_id``), whose
   cost is the hold's charge; no other hold has one.
4. ``charged ≤ amount`` for every hold (a CHECK constraint as well).

Concurrency
-----------
Every function here runs in the caller's write transaction on a raw cursor
(``Database.raw_write``). Taking a hold is one conditional UPDATE of the
wallet (``… WHERE balance − reserved − amount ≥ −overdraft``): on SQLite the
transaction began ``IMMEDIATE``, so writers are serialised; on PostgreSQL the
UPDATE locks the wallet row and re-evaluates its condition after any wait, so
two holds can never both spend the same credits. Rows are locked in one
order everywhere (holds, then wallets, then keys) so no two of these
transactions deadlock; a take updates the key last of all, after the hold's
INSERT, so that a refused one (its wallet UPDATE locked nothing) never waits
for the wallet's row while it holds the key.

Expiry is lazy (``core.hold_expiry``): a wallet's overdue holds are expired
when it takes its next hold, and ``flask release-expired-holds`` sweeps them
all.

Durability
----------
The gateway commits a hold without waiting for the disk
(``Database.raw_write(durable=False)``); settles, releases and everything
else still wait. A power cut or an operating-system crash may then lose the
last holds taken, with everything their transactions wrote (the reservation,
the key's share, a lazy expiry), and nothing else: both databases recover a
prefix of the commits, and any later durable commit (the call's own settle
first) makes every earlier one durable. A lost hold's call is simply not
charged, exactly as a call whose process died mid-call (its hold expires
with no charge). A crash of the process alone loses nothing. What it saves
is the hold's fsync, on the call's path before the upstream is even asked.

Every change of state is counted here (``creditline_holds_total``, after the
commit: ``core.metrics.count_hold``), whoever made it: the gateway, a chat
turn, an admin, the sweep or a lazy expiry. A duplicate settle or release
changes nothing and counts nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core import hold_taking, metrics
from core.enums import HoldStatus, UsageStatus
from core.hold_expiry import expire_overdue
from core.ledger import settle_charge
from core.pricebook import ModelPrice, PriceBook
from core.pricing import usage_cost_ucr
from core.rawdb import RawCursor, Statement
from core.usage_rollups import rollup_upsert


@dataclass(frozen=True)
class Snapshot:
    """The rate and prices a hold was taken at (its settlement uses them)."""

    model_id: int
    model_name: str
    credits_per_usd: int
    input_uusd_per_m: int
    output_uusd_per_m: int
    rate_version_id: int | None
    price_version_id: int | None

    @classmethod
    def at(cls, book: PriceBook, price: ModelPrice) -> Snapshot:
        """The rate and ``price`` of ``book``, as a hold keeps them."""
        return cls(
            model_id=price.id,
            model_name=price.name,
            credits_per_usd=book.credits_per_usd,
            input_uusd_per_m=price.input_uusd_per_m,
            output_uusd_per_m=price.output_uusd_per_m,
            rate_version_id=book.rate_version_id,
            price_version_id=price.price_version_id,
        )

    def cost(self, input_tokens: int, output_tokens: int) -> int:
        return usage_cost_ucr(
            input_tokens,
            output_tokens,
            self.input_uusd_per_m,
            self.output_uusd_per_m,
            self.credits_per_usd,
        )


@dataclass(frozen=True)
class HoldRequest:
    """What a caller asks to reserve, before a call."""

    user_id: int
    user_email: str
    wallet_id: int
    user_key_id: int | None
    source: str  # what users see: the key's name, "Chat · <app>"
    snapshot: Snapshot
    max_input_tokens: int
    max_output_tokens: int
    overdraft_ucr: int
    ttl: timedelta

    @property
    def amount_ucr(self) -> int:
        return self.snapshot.cost(self.max_input_tokens, self.max_output_tokens)


@dataclass(frozen=True)
class Hold:
    """An active hold, as its taker knows it."""

    id: int
    request: HoldRequest
    amount_ucr: int
    expires_at: datetime


@dataclass(frozen=True)
class Settlement:
    """What a settle did: the charge, any shortfall, and the balance after."""

    hold_id: int
    charged_ucr: int
    shortfall_ucr: int
    balance_ucr: int
    usage_event_id: int
    duplicate: bool


def take(
    cur: RawCursor,
    request: HoldRequest,
    now: datetime,
    *,
    max_active: int | None = None,
    expired: list[Any] | None = None,
) -> Hold:
    """Reserve the worst case of a call, or refuse (nothing changes then).

    Raises ``InsufficientCredits`` (details: required, available),
    ``KeyLimitReached`` or, when the user already has ``max_active`` active
    holds, ``ConcurrencyLimited``; the caller's transaction must then roll
    back. The count is taken under the wallet's lock, so it holds across
    processes and servers.

    The same statements refuse a disabled user (``UserDisabled``) and a key
    revoked or expired (``Unauthenticated``): the gateway trusts a key it has
    seen before without a query (``core.recent_keys``) because of this.

    The wallet's overdue holds are expired first; ``expired``: the rows of
    ``expire_statement`` for this wallet, if the caller ran it already (in
    this transaction, with a query of its own: one round trip).
    """
    expire_overdue(cur, now, wallet_id=request.wallet_id, rows=expired)
    statements = hold_taking.take_statements(cur, request, now, max_active=max_active)
    return taken(cur, request, now, cur.execute_all(statements))


def taken(
    cur: RawCursor,
    request: HoldRequest,
    now: datetime,
    results: Sequence[list[Any]],
) -> Hold:
    """The hold that ``take_statements`` took, from their ``results``; or the
    refusal ``take`` documents, raised (the caller's transaction must then
    roll back)."""
    hold_id = hold_taking.taken_id(cur, request, now, results)
    metrics.count_hold("taken")
    return Hold(hold_id, request, request.amount_ucr, now + request.ttl)


def _close_statement(
    cur: RawCursor, hold_id: int, status: HoldStatus, now: datetime, **values: Any
) -> Statement:
    """Move an active hold to ``status``: a statement returning a row only if
    it did (no row: it had already left ``active``)."""
    sets = "".join(f", {column} = :{column}" for column in values)
    return (
        f"UPDATE holds SET status = :status, closed_at = :now{sets}"
        " WHERE id = :hold AND status = 'active' RETURNING id",
        {"status": status.value, "now": cur.db_value(now), "hold": hold_id, **values},
    )


def _close(cur: RawCursor, hold_id: int, status: HoldStatus, now: datetime, **values: Any) -> bool:
    """Move an active hold to ``status``; False if it had already left ``active``."""
    return bool(cur.execute(*_close_statement(cur, hold_id, status, now, **values)).fetchall())


def _unreserve(cur: RawCursor, wallet_id: int, key_id: int | None, amount: int) -> None:
    """Free ``amount`` on the wallet and the key, charging nothing."""
    cur.execute(
        "UPDATE wallets SET reserved_ucr = reserved_ucr - :amount WHERE id = :w",
        {"amount": amount, "w": wallet_id},
    )
    key = _key_statement(key_id, amount, 0)
    if key is not None:
        cur.execute(*key)


def _key_statement(key_id: int | None, amount: int, spent: int) -> Statement | None:
    """Free ``amount`` on the key; ``spent`` moves to its spent (None without a key)."""
    if key_id is None:
        return None
    return (
        "UPDATE user_api_keys SET reserved_ucr = reserved_ucr - :key_freed,"
        " spent_ucr = spent_ucr + :key_spent WHERE id = :k",
        {"key_freed": amount, "key_spent": spent, "k": key_id},
    )


def settle(
    cur: RawCursor,
    hold: Hold,
    input_tokens: int,
    output_tokens: int,
    now: datetime,
    *,
    estimated: bool = False,
    disconnected: bool = False,
    event_id: str | None = None,
    commit: bool = False,
) -> Settlement:
    """Charge a call's real usage (priced at the hold's snapshot), at most the hold.

    Exactly once: a second settle (or a settle after a release or expiry)
    changes nothing and returns the stored outcome marked duplicate.
    ``estimated`` marks a charge computed from bytes, not reported usage.
    ``commit``: the caller's transaction ends with the settle (on PostgreSQL
    its COMMIT then goes out with the settle's statement:
    ``core.ledger.settle_charge``).
    """
    request, snap = hold.request, hold.request.snapshot
    actual = snap.cost(input_tokens, output_tokens)
    charge = min(actual, hold.amount_ucr)
    shortfall = actual - charge
    at = cur.db_value(now)
    event = {
        "integration_key_id": None,
        "hold_id": hold.id,
        "user_key_id": request.user_key_id,
        "source": request.source,
        "disconnected": disconnected,
        "event_id": event_id or f"hold-{hold.id}",
        "payload_hash": hashlib.sha256(f"hold:{hold.id}".encode()).hexdigest(),
        "user_ref": request.user_email,
        "user_id": request.user_id,
        "model_name": snap.model_name,
        "model_id": snap.model_id,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_ucr": charge,
        "status": UsageStatus.ESTIMATED if estimated else UsageStatus.CHARGED,
        "reason_code": None,
        "reason": None,
        "credits_per_usd": snap.credits_per_usd,
        "input_price_uusd_per_m": snap.input_uusd_per_m,
        "output_price_uusd_per_m": snap.output_uusd_per_m,
        "rate_version_id": snap.rate_version_id,
        "price_version_id": snap.price_version_id,
        "conversation_id": None,
        "occurred_at": at,
        "received_at": at,
    }
    memo = f"{snap.model_name}: {input_tokens} in / {output_tokens} out ({request.source})"
    rollup = {(request.user_id, snap.model_id): (1, input_tokens, output_tokens, charge)}
    settled = settle_charge(
        cur,
        request.wallet_id,
        hold.amount_ucr,
        charge,
        event,
        memo,
        rollup_upsert(cur, now, rollup),
        now,
        close=_close_statement(
            cur, hold.id, HoldStatus.SETTLED, now, charged_ucr=charge, shortfall_ucr=shortfall
        ),
        after=_key_statement(request.user_key_id, hold.amount_ucr, charge),
        commit=commit,
    )
    if settled is None:
        return _stored_settlement(cur, hold.id)  # a duplicate settle: not counted
    metrics.count_hold("settled")
    event_pk, new = settled
    return Settlement(hold.id, charge, shortfall, new, event_pk, duplicate=False)


def _stored_settlement(cur: RawCursor, hold_id: int) -> Settlement:
    """What a hold already closed was charged (a duplicate settle's answer)."""
    row = cur.execute(
        "SELECT h.charged_ucr, h.shortfall_ucr, e.balance_after_ucr, e.id"
        " FROM holds h LEFT JOIN usage_events e ON e.hold_id = h.id WHERE h.id = :id",
        {"id": hold_id},
    ).fetchone()
    assert row is not None, f"hold {hold_id} is gone"
    charged, shortfall, balance, event_pk = row
    return Settlement(hold_id, charged or 0, shortfall or 0, balance or 0, event_pk or 0, True)


def release(cur: RawCursor, hold: Hold, reason_code: str, now: datetime) -> bool:
    """Free a hold with no charge. False if it had already been closed."""
    if not _close(cur, hold.id, HoldStatus.RELEASED, now, reason_code=reason_code):
        return False
    metrics.count_hold("released")
    request = hold.request
    _unreserve(cur, request.wallet_id, request.user_key_id, hold.amount_ucr)
    return True


def release_by_id(cur: RawCursor, hold_id: int, reason_code: str, now: datetime) -> bool:
    """Free an active hold known only by id (admins, the CLI). False if closed."""
    row = cur.execute(
        "SELECT wallet_id, user_key_id, amount_ucr FROM holds WHERE id = :id AND status = 'active'",
        {"id": hold_id},
    ).fetchone()
    if row is None or not _close(cur, hold_id, HoldStatus.RELEASED, now, reason_code=reason_code):
        return False
    metrics.count_hold("released")
    _unreserve(cur, row[0], row[1], row[2])
    return True
