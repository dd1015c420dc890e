"""Chat with Dify apps: a user's message held, sent to Dify once, charged once.

One *turn* (a question and its answer) in three steps, none of which holds a
transaction open across the network (as the gateway does, ``core.gateway``):

1. ``start_turn`` (one write transaction): take a hold for the app's
   per-message worst case (``core.holds``) and store the turn, ``pending``
   (and the conversation, for a first message).
2. ``open_turn`` (the page's event stream): the conditional change
   ``pending → running`` decides which request calls Dify; only that one
   sends ``POST {base}/chat-messages`` (``response_mode: streaming``,
   ``user: creditline-<user id>``). Any other request for the turn (a
   reconnect, a replay) waits for it to end and replays the stored answer.
3. ``core.dify_relay`` closes the turn (one write transaction): on
   ``message_end`` the hold is settled at the app's billing model with Dify's ``prompt_tokens`` and
   ``completion_tokens`` (a usage event whose ``event_id`` is Dify's message
   id, ``hold_id`` set: the same path as every gateway call); on a Dify
   error, a broken stream or nothing at all the hold is released. The turn
   moves ``running → done / failed`` in that transaction.

If the browser leaves mid-answer, Dify's stream is still read to
``message_end`` (within the drain deadline, ``GATEWAY_DRAIN_SECONDS``) and
charged. Conversations and turns are found only together with their owner's
id: another user's id answers like an id that does not exist.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from core import holds
from core.clock import utcnow
from core.db import Database
from core.dify_relay import Run, TurnRelay, close_turn, fail_turn
from core.dify_stream import sse
from core.errors import ChatNotFound, LimitExceeded, ModelDisabled, UpstreamFailed, ValidationError
from core.gateway.service import GatewaySettings
from core.gateway.upstream_client import Upstream, UpstreamClient
from core.holds import Hold, HoldRequest, Snapshot
from core.pricebook import PriceBookCache
from core.pricing import format_credits
from core.rawdb import RawCursor
from core.secret_box import SecretBox

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 10_000
TITLE_CHARS = 80
PING = b": ping\n\n"
REPLAY_POLL_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Chatter:
    """The signed-in user who sends a message."""

    user_id: int
    email: str


@dataclass(frozen=True)
class StartedTurn:
    turn_id: int
    conversation_id: int
    new_conversation: bool


def _clean_query(query: str) -> str:
    text = (query or "").strip()
    if not text:
        raise ValidationError("Write a message first.", field="query")
    if len(text) > MAX_QUERY_CHARS:
        raise ValidationError(
            f"A message may be {MAX_QUERY_CHARS:,} characters at most.", field="query"
        )
    return text


class DifyChat:
    """The chat's domain: one per app, shared by its threads."""

    def __init__(
        self,
        db: Database,
        prices: PriceBookCache,
        box: SecretBox,
        client: UpstreamClient,
        settings: GatewaySettings,
    ) -> None:
        self.db = db
        self.prices = prices
        self.box = box
        self.client = client
        self.settings = settings

    # --- 1. a new turn --------------------------------------------------------

    def start_turn(
        self, who: Chatter, slug: str, query: str, conversation_id: int | None
    ) -> StartedTurn:
        """Hold the app's worst case and store the turn (one write transaction).

        Raises ``ChatNotFound`` (app not enabled, conversation not the user's),
        ``InsufficientCredits`` (nothing is stored then), ``LimitExceeded``,
        ``ModelDisabled``, ``ConcurrencyLimited`` or ``ValidationError``.
        """
        text = _clean_query(query)
        now = utcnow()
        with self.db.raw_write() as cur:
            app = cur.execute(
                "SELECT a.id, a.name, m.name, a.max_input_tokens, a.max_output_tokens"
                " FROM dify_apps a JOIN ai_models m ON m.id = a.model_id"
                " WHERE a.slug = :s AND a.enabled = :t",
                {"s": slug, "t": True},
            ).fetchone()
            if app is None:
                raise ChatNotFound("There is no such app.")
            app_id, app_name, model_name, max_in, max_out = app
            if conversation_id is not None:
                owned = cur.scalar(
                    "SELECT id FROM chat_conversations WHERE id = :c AND user_id = :u"
                    " AND app_id = :a",
                    {"c": conversation_id, "u": who.user_id, "a": app_id},
                )
                if owned is None:
                    raise ChatNotFound("There is no such conversation.")
            wallet_id = cur.scalar("SELECT id FROM wallets WHERE user_id = :u", {"u": who.user_id})
            book = self.prices.current(cur)
            price = book.models.get(model_name)
            if price is None or not price.enabled:
                raise ModelDisabled(f"{app_name} is not available right now.")
            request = HoldRequest(
                user_id=who.user_id,
                user_email=who.email,
                wallet_id=wallet_id,
                user_key_id=None,
                source=f"Chat · {app_name}",
                snapshot=Snapshot.at(book, price),
                max_input_tokens=max_in,
                max_output_tokens=max_out,
                overdraft_ucr=book.settings.overdraft_limit_ucr,
                ttl=self.settings.hold_ttl,
            )
            if request.amount_ucr > book.settings.max_credits_per_event_ucr:
                raise LimitExceeded(
                    f"A message to {app_name} may cost up to "
                    f"{format_credits(request.amount_ucr)} credits, above the cap of "
                    f"{format_credits(book.settings.max_credits_per_event_ucr)} per call."
                )
            hold = holds.take(cur, request, now, max_active=self.settings.max_concurrent_per_user)
            at = cur.db_value(now)
            new = conversation_id is None
            if new:
                (conversation_id,) = cur.insert_with_ids(
                    "chat_conversations",
                    [
                        {
                            "user_id": who.user_id,
                            "app_id": app_id,
                            "title": " ".join(text.split())[:TITLE_CHARS],
                            "dify_conversation_id": None,
                            "created_at": at,
                            "updated_at": at,
                        }
                    ],
                )
            else:
                cur.execute(
                    "UPDATE chat_conversations SET updated_at = :at WHERE id = :c",
                    {"at": at, "c": conversation_id},
                )
            (turn_id,) = cur.insert_with_ids(
                "chat_turns",
                [
                    {
                        "conversation_id": conversation_id,
                        "user_id": who.user_id,
                        "hold_id": hold.id,
                        "query": text,
                        "answer": "",
                        "state": "pending",
                        "disconnected": False,
                        "created_at": at,
                    }
                ],
            )
        return StartedTurn(turn_id, conversation_id, new)

    # --- 2. the turn's event stream -------------------------------------------

    def open_turn(self, user_id: int, turn_id: int) -> Iterator[bytes]:
        """The turn's events for its owner (a WSGI iterable); ``ChatNotFound`` else.

        The request that moves the turn from ``pending`` to ``running`` calls
        Dify; every other request replays what the turn stored.
        """
        with self.db.raw_write() as cur:
            claimed = cur.execute(
                "UPDATE chat_turns SET state = 'running'"
                " WHERE id = :t AND user_id = :u AND state = 'pending'",
                {"t": turn_id, "u": user_id},
            ).rowcount
            if not claimed:
                owner = cur.scalar("SELECT user_id FROM chat_turns WHERE id = :t", {"t": turn_id})
                if owner != user_id:
                    raise ChatNotFound("There is no such message.")
                run = None
            else:
                run = self._run(cur, turn_id, user_id)
                if run is None:  # the hold expired before the page connected
                    close_turn(cur, turn_id, "failed", "The message expired; send it again.")
        if run is None:
            return self._replay(turn_id)
        try:
            target = self._target(turn_id)
            body = {
                "inputs": {},
                "query": target.query,
                "response_mode": "streaming",
                "conversation_id": target.dify_conversation_id or "",
                "user": f"creditline-{user_id}",
            }
            stream = self.client.open_stream(target.upstream, "chat-messages", body, run.deadline)
        except UpstreamFailed as exc:  # refused, unreachable, timed out, key unreadable
            log.warning("dify app refused turn %s: %s", turn_id, exc.code)
            fail_turn(
                self.db, run, "upstream_error", "The app could not be reached; nothing was charged."
            )
            return self._replay(turn_id)
        return TurnRelay(self.db, self.settings, run, stream)

    def _run(self, cur: RawCursor, turn_id: int, user_id: int) -> Run | None:
        row = cur.execute(
            "SELECT t.conversation_id, h.id, h.wallet_id, h.user_key_id, h.model_id, m.name,"
            " h.source, h.amount_ucr, h.max_input_tokens, h.max_output_tokens,"
            " h.credits_per_usd, h.input_price_uusd_per_m, h.output_price_uusd_per_m,"
            " h.rate_version_id, h.price_version_id, h.expires_at, h.status, u.email"
            " FROM chat_turns t JOIN holds h ON h.id = t.hold_id"
            " JOIN ai_models m ON m.id = h.model_id JOIN users u ON u.id = t.user_id"
            " WHERE t.id = :t",
            {"t": turn_id},
        ).fetchone()
        assert row is not None
        (conv, hold_id, wallet, key, model_id, model_name, source, amount, max_in, max_out) = row[
            :10
        ]
        rate, price_in, price_out, rate_v, price_v, expires, status, email = row[10:]
        if status != "active":
            return None
        snapshot = Snapshot(model_id, model_name, rate, price_in, price_out, rate_v, price_v)
        request = HoldRequest(
            user_id=user_id,
            user_email=email,
            wallet_id=wallet,
            user_key_id=key,
            source=source,
            snapshot=snapshot,
            max_input_tokens=max_in,
            max_output_tokens=max_out,
            overdraft_ucr=0,
            ttl=self.settings.hold_ttl,
        )
        expires_at = cur.to_datetime(expires)
        assert expires_at is not None
        hold = Hold(hold_id, request, amount, expires_at)
        return Run(
            turn_id, user_id, conv, hold, time.monotonic() + self.settings.stream_max_seconds
        )

    @dataclass(frozen=True)
    class _Target:
        upstream: Upstream
        query: str
        dify_conversation_id: str | None

    def _target(self, turn_id: int) -> DifyChat._Target:
        with self.db.raw_read() as cur:
            base_url, sealed, query, dify_conv = cur.execute(
                "SELECT a.base_url, a.key_sealed, t.query, c.dify_conversation_id"
                " FROM chat_turns t JOIN chat_conversations c ON c.id = t.conversation_id"
                " JOIN dify_apps a ON a.id = c.app_id WHERE t.id = :t",
                {"t": turn_id},
            ).fetchone()
        return DifyChat._Target(Upstream(base_url, self.box.open(sealed)), query, dify_conv)

    # --- replays and stop ---------------------------------------------------------

    def _replay(self, turn_id: int) -> Iterator[bytes]:
        """A turn's stored ending, once it has one (waiting with pings while
        another request streams it)."""
        until = time.monotonic() + self.settings.stream_max_seconds + self.settings.drain_seconds
        while True:
            with self.db.raw_read() as cur:
                state, answer, error = cur.execute(
                    "SELECT state, answer, error FROM chat_turns WHERE id = :t", {"t": turn_id}
                ).fetchone()
            if state == "done":
                yield sse("end", html.escape(answer))
                return
            if state == "failed":
                yield sse("error", html.escape(error or "The message failed."))
                return
            if time.monotonic() > until:
                yield sse("error", "The answer did not finish in time.")
                return
            yield PING
            threading.Event().wait(REPLAY_POLL_SECONDS)

    def stop_turn(self, user_id: int, turn_id: int) -> bool:
        """Ask Dify to stop the turn's answer (it then ends the stream and the
        turn is charged for what was generated). A turn not started yet is
        closed with its hold released. False when there is nothing to stop."""
        with self.db.raw_write() as cur:
            row = cur.execute(
                "SELECT t.state, t.task_id, t.hold_id, a.base_url, a.key_sealed"
                " FROM chat_turns t JOIN chat_conversations c ON c.id = t.conversation_id"
                " JOIN dify_apps a ON a.id = c.app_id WHERE t.id = :t AND t.user_id = :u",
                {"t": turn_id, "u": user_id},
            ).fetchone()
            if row is None:
                raise ChatNotFound("There is no such message.")
            state, task_id, hold_id, base_url, sealed = row
            if state == "pending":
                holds.release_by_id(cur, hold_id, "stopped", utcnow())
                close_turn(cur, turn_id, "failed", "Stopped before it was sent.")
                return True
        if state != "running" or not task_id:
            return False
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        try:
            upstream = Upstream(base_url, self.box.open(sealed))
            self.client.post_json(
                upstream,
                f"chat-messages/{task_id}/stop",
                {"user": f"creditline-{user_id}"},
                deadline,
            )
        except UpstreamFailed as exc:
            log.warning("dify stop of turn %s failed: %s", turn_id, exc.code)
            return False
        return True
