"""Relaying one Dify answer to the browser, and closing its turn exactly once.

:class:`TurnRelay` is the WSGI response of the request that won a turn
(``core.dify.DifyChat.open_turn``): it reads Dify's stream
(``core.dify_stream.DifyReader``) and sends the browser ``delta``,
``replace`` and ``step`` events as they come, then ``end`` (the final answer)
or ``error``. Before that last event is sent the turn is closed in one write
transaction, by this table:

=========================================  ==============================  =========
ending                                     hold                            turn
=========================================  ==============================  =========
``message_end`` with usage                 settled: the usage at the       done
                                           app's billing model, event id
                                           = Dify's message id
``message_end`` without usage              released                        done
Dify ``error`` event                       released                        failed
stream cut, deadline, nothing received     released                        failed
browser gone                               Dify read on to its end within  as above
                                           ``drain_seconds``, then as above
=========================================  ==============================  =========

A browser is known to be gone when writing to it fails: the WSGI server then
closes the iterator (``GeneratorExit`` at a ``yield``), as in the gateway
(``core.gateway.service``); keep-alive comments make sure a write happens
while Dify is silent.
"""

from __future__ import annotations

import html
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from core import holds
from core.clock import utcnow
from core.db import Database
from core.dify_stream import DifyReader, sse
from core.gateway.service import GatewaySettings
from core.gateway.sse_relay import EventSplitter
from core.gateway.upstream_client import UpstreamStream
from core.holds import Hold
from core.rawdb import RawCursor

log = logging.getLogger(__name__)

PING = b": ping\n\n"


@dataclass
class Run:
    """A turn whose request won ``pending → running``: it talks to Dify."""

    turn_id: int
    user_id: int
    conversation_id: int
    hold: Hold
    deadline: float
    finished: bool = False


def close_turn(
    cur: RawCursor, turn_id: int, state: str, error: str | None, answer: str = ""
) -> None:
    """End a turn that has not ended (``failed``, with the message users see)."""
    cur.execute(
        "UPDATE chat_turns SET state = :s, error = :e, answer = :a, finished_at = :at"
        " WHERE id = :t AND state IN ('pending', 'running')",
        {"s": state, "e": error, "a": answer, "at": cur.db_value(utcnow()), "t": turn_id},
    )


def fail_turn(db: Database, run: Run, reason: str, message: str, answer: str = "") -> None:
    """Release the turn's hold and mark it failed (one write transaction)."""
    run.finished = True
    with db.raw_write() as cur:
        holds.release(cur, run.hold, reason[:40], utcnow())
        close_turn(cur, run.turn_id, "failed", message, answer)


class TurnRelay:
    """A WSGI response iterable: Dify's answer as the browser's events. A
    browser gone before the first event still has Dify drained and charged
    (``close`` is called by every WSGI server)."""

    def __init__(
        self, db: Database, settings: GatewaySettings, run: Run, stream: UpstreamStream
    ) -> None:
        self._db = db
        self._settings = settings
        self._run = run
        self._stream = stream
        self._reader = DifyReader()
        self._splitter = EventSplitter()
        self._pending: deque[bytes] = deque()  # events split from a chunk, not yet read
        self._events = self._relay()
        self._started = False

    def __iter__(self) -> TurnRelay:
        return self

    def __next__(self) -> bytes:
        self._started = True
        return next(self._events)

    def close(self) -> None:
        if self._started:
            self._events.close()
            return
        try:
            self._drain()
        finally:
            self._stream.close()
            if not self._run.finished:
                self._finish(disconnected=True)

    def _relay(self) -> Iterator[bytes]:
        reader, run = self._reader, self._run
        try:
            for chunk in self._stream.chunks(self._settings.ping_seconds):
                if chunk is UpstreamStream.PING:
                    yield PING
                    continue
                self._pending.extend(self._splitter.feed(chunk))
                while self._pending:
                    event = self._pending.popleft()
                    known = reader.task_id
                    shown = reader.feed(event)
                    if reader.task_id and not known:
                        self._started_task()
                    for name, text in shown:
                        yield sse(name, html.escape(text))
                if reader.ended:
                    break
            final = self._finish(disconnected=False)
            yield final
        except GeneratorExit:
            if not run.finished:
                self._drain()
                self._finish(disconnected=True)
            raise
        finally:
            self._stream.close()
            if not run.finished:
                self._finish(disconnected=False)

    def _drain(self) -> None:
        """The browser left: read Dify on to ``message_end``, within the drain time."""
        until = time.monotonic() + self._settings.drain_seconds
        while self._pending and not self._reader.ended:  # split, not yet read
            self._reader.feed(self._pending.popleft())
        if self._reader.ended:
            return
        for chunk in self._stream.chunks(self._settings.ping_seconds, until=until):
            for event in self._splitter.feed(chunk):
                self._reader.feed(event)
            if self._reader.ended:
                return

    def _started_task(self) -> None:
        """Dify named the task (``stop`` needs it) and the conversation."""
        reader, run = self._reader, self._run
        with self._db.raw_write() as cur:
            cur.execute(
                "UPDATE chat_turns SET task_id = :task WHERE id = :t",
                {"task": reader.task_id, "t": run.turn_id},
            )
            _remember_conversation(cur, run, reader)

    def _finish(self, *, disconnected: bool) -> bytes:
        """Close the turn by the module's table, exactly once; the browser's last event."""
        run, reader = self._run, self._reader
        run.finished = True
        answer = reader.answer
        if not reader.ended or reader.error_code is not None:
            if reader.error_code:
                log.warning(
                    "dify error on turn %s: %s %s",
                    run.turn_id,
                    reader.error_code,
                    reader.error_message,
                )
                message = "The app reported an error; nothing was charged."
            elif reader.events:
                message = "The answer was cut off; nothing was charged."
            else:
                message = "The app sent no answer; nothing was charged."
            fail_turn(self._db, run, reader.error_code or "no_answer", message, answer)
            return sse("error", html.escape(message))
        now = utcnow()
        usage = reader.usage
        with self._db.raw_write() as cur:
            charged = None
            if usage is not None and reader.message_id:
                settled = holds.settle(
                    cur,
                    run.hold,
                    usage.input_tokens,
                    usage.output_tokens,
                    now,
                    disconnected=disconnected,
                    event_id=reader.message_id,
                )
                charged = settled.charged_ucr
            else:
                holds.release(cur, run.hold, "no_usage", now)
            cur.execute(
                "UPDATE chat_turns SET state = 'done', answer = :a, message_id = :m,"
                " input_tokens = :i, output_tokens = :o, charged_ucr = :c,"
                " dify_total_price = :p, disconnected = :d, finished_at = :at"
                " WHERE id = :t AND state = 'running'",
                {
                    "a": answer,
                    "m": reader.message_id,
                    "i": usage.input_tokens if usage else None,
                    "o": usage.output_tokens if usage else None,
                    "c": charged,
                    "p": reader.total_price,
                    "d": disconnected,
                    "at": cur.db_value(now),
                    "t": run.turn_id,
                },
            )
            _remember_conversation(cur, run, reader)
        return sse("end", html.escape(answer))


def _remember_conversation(cur: RawCursor, run: Run, reader: DifyReader) -> None:
    """The Dify conversation a first message started, kept for the next ones."""
    if reader.conversation_id:
        cur.execute(
            "UPDATE chat_conversations SET dify_conversation_id = :d"
            " WHERE id = :c AND dify_conversation_id IS NULL",
            {"d": reader.conversation_id, "c": run.conversation_id},
        )
