"""Taking a call's hold: the first of the gateway's two write transactions.

A hold is taken at the config version read in its own transaction: the
price book and the routes are cached per process and reloaded when that
version moves (``core.pricebook``, ``routing.RouteCache``). The wallet's
overdue holds are expired before it reserves (``core.hold_expiry``), and
the request is refused above the per-event caps before anything is reserved.

One round trip on PostgreSQL
----------------------------
Each round trip to PostgreSQL costs CPU in both processes (the worker's
psycopg work was close to half of its Python time under load), so the
usual take is one round trip plus its COMMIT. The call is planned first,
outside any transaction, at the book and routes cached in the process; then
the version read, the wallet's expiry sweep and the take's own statements
(``core.hold_taking.take_statements``) go out together. The results are
used only if the version read is the cached one and the sweep expired
nothing; otherwise the transaction is rolled back and the hold is taken the
general way: the reads, then the plan, then the take, two round trips. So
is it when nothing is cached yet or the plan is refused at the cached
version (the general way then decides at the current one), and always on
SQLite, where a statement costs no round trip.

Either way the statements run in the same order, so the lock order of
``core.holds`` (holds, then wallets, then keys) is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from core import hold_taking, holds
from core.errors import DomainError, LimitExceeded, ModelDisabled, UnknownModel
from core.gateway.call_plan import CallPlan
from core.gateway.routing import ResolvedRoute, RouteCache
from core.group_commit import GroupCommit
from core.hold_expiry import expire_statement
from core.holds import Hold, HoldRequest, Snapshot
from core.pricebook import VERSION_SQL, PriceBook, PriceBookCache
from core.pricing import format_credits
from core.rawdb import RawCursor
from core.settings import Settings
from core.user_keys import KeyHolder

Taken = tuple[Hold, CallPlan, ResolvedRoute]
# A call's request, plan and route at a price book and routes (``hold_request``).
PlanAt = Callable[
    [PriceBook, Mapping[str, ResolvedRoute]], tuple[HoldRequest, CallPlan, ResolvedRoute]
]


class _NotAtCachedVersion(Exception):
    """Raised when a take built from the cached book cannot stand: the
    version moved or the sweep expired a hold (the general way decides at
    the current version)."""


class CallHolds:
    """Takes the holds of one app's gateway calls (thread-safe)."""

    def __init__(self, writes: GroupCommit, prices: PriceBookCache, routes: RouteCache) -> None:
        self.writes = writes
        self.prices = prices
        self.routes = routes

    def take(
        self,
        holder: KeyHolder,
        call: PlanAt,
        now: datetime,
        *,
        max_active: int,
    ) -> Taken:
        """Hold the worst case of the call that ``call`` plans at a price
        book and routes (its request, plan and route; it raises a
        ``DomainError`` to refuse). Not durable: a hold lost to a power cut
        is a call not charged, as when the process dies mid-call
        (``core.holds``, "Durability")."""
        planned = None if self.writes.db.is_sqlite else self._planned_at_cached_version(call)
        if planned is not None:
            book, (request, plan, route) = planned
            try:
                hold = self.writes.run(
                    lambda cur: self._take_at(cur, book.version, holder, request, now, max_active),
                    durable=False,
                )
                return hold, plan, route
            except _NotAtCachedVersion:
                pass
        return self.writes.run(
            lambda cur: self._at_current_version(cur, holder, call, now, max_active),
            durable=False,
        )

    def _at_current_version(
        self, cur: RawCursor, holder: KeyHolder, call: PlanAt, now: datetime, max_active: int
    ) -> Taken:
        """The general way: the version and the sweep (one round trip), then the take."""
        version, expired = cur.execute_all(
            [(VERSION_SQL, None), expire_statement(cur, now, wallet_id=holder.wallet_id)]
        )
        book = self.prices.at_version(cur, version[0][0])
        request, plan, route = call(book, self.routes.current(cur, book.version))
        hold = holds.take(cur, request, now, max_active=max_active, expired=expired)
        return hold, plan, route

    def _planned_at_cached_version(
        self, call: PlanAt
    ) -> tuple[PriceBook, tuple[HoldRequest, CallPlan, ResolvedRoute]] | None:
        """The call planned at the cached book and routes, before any
        transaction; None if nothing is cached or the plan is refused there."""
        book = self.prices.cached
        routes = None if book is None else self.routes.cached(book.version)
        if book is None or routes is None:
            return None
        try:
            return book, call(book, routes)
        except DomainError:
            return None

    def _take_at(
        self,
        cur: RawCursor,
        version: int,
        holder: KeyHolder,
        request: HoldRequest,
        now: datetime,
        max_active: int,
    ) -> Hold:
        """The usual way on PostgreSQL: everything in one round trip (see module)."""
        current, expired, *results = cur.execute_all(
            [
                (VERSION_SQL, None),
                expire_statement(cur, now, wallet_id=holder.wallet_id),
                *hold_taking.take_statements(cur, request, now, max_active=max_active),
            ]
        )
        if current[0][0] != version or expired:
            raise _NotAtCachedVersion
        return holds.taken(cur, request, now, results)


def hold_request(
    holder: KeyHolder,
    model: str,
    book: PriceBook,
    routes: Mapping[str, ResolvedRoute],
    plan_call: Callable[[ResolvedRoute], CallPlan],
    ttl: timedelta,
) -> tuple[HoldRequest, CallPlan, ResolvedRoute]:
    """What a call to ``model`` would hold at ``book`` and ``routes``, its
    plan (``plan_call`` for the model's route) and route; refuses an unknown
    or disabled model and a worst case above the per-event caps."""
    route = routes.get(model)
    price = book.models.get(model)
    if route is None or price is None:
        raise UnknownModel(f"The model {model!r} does not exist.", param="model")
    if not route.callable:
        raise ModelDisabled(f"The model {model!r} is not available.", param="model")
    plan = plan_call(route)
    request = HoldRequest(
        user_id=holder.user_id,
        user_email=holder.user_email,
        wallet_id=holder.wallet_id,
        user_key_id=holder.key_id,
        source=holder.key_name,
        snapshot=Snapshot.at(book, price),
        max_input_tokens=plan.max_input_tokens,
        max_output_tokens=plan.max_output_tokens,
        overdraft_ucr=book.settings.overdraft_limit_ucr,
        ttl=ttl,
    )
    _check_caps(request, book.settings)
    return request, plan, route


def _check_caps(request: HoldRequest, settings: Settings) -> None:
    """Refuse a worst case above the per-event caps (the usage API's caps)."""
    tokens = request.max_input_tokens + request.max_output_tokens
    if tokens > settings.max_tokens_per_event:
        raise LimitExceeded(
            f"This call could use {tokens:,} tokens, above the cap of "
            f"{settings.max_tokens_per_event:,} per call; lower max_tokens.",
            param="max_tokens",
        )
    amount = request.amount_ucr
    if amount > settings.max_credits_per_event_ucr:
        raise LimitExceeded(
            f"This call could cost {format_credits(amount)} credits, above the cap of "
            f"{format_credits(settings.max_credits_per_event_ucr)} per call; lower max_tokens.",
            param="max_tokens",
        )
