"""Delivering the outbox: claim due rows, send them, record the outcome.

Three short steps, none of which holds a transaction open over the network:

1. **Claim** (one write transaction): each due row (``pending``, its
   ``next_attempt_at`` reached, no live lease) is taken with a conditional
   UPDATE that sets a lease and counts the attempt. The UPDATE only succeeds
   for one claimant, so several threads, workers or servers may drain the
   same database and a row is delivered by one of them. A claimant that dies
   leaves a lease that runs out; the row is then due again.
2. **Send**: the email through ``core.mailer``, the webhook through
   ``core.webhook_signing`` (httpx), outside any transaction.
3. **Record** (one write transaction): ``sent``, or back to ``pending`` with
   the next attempt after an exponential backoff (30 s, 1 min, 2 min, ...
   at most 6 h), or ``failed`` after ``MAX_ATTEMPTS``. The record is
   conditional on the attempt count the claim set, so a late claimant whose
   lease ran out cannot overwrite a newer claim.

Rows whose channel is not configured (no ``MAIL_URL``; no webhook URL or
secret) are marked ``skipped``. Everything lives in the database: a restart
loses nothing, and the next drain picks the row up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from core import outbox
from core import settings as settings_mod
from core.clock import utcnow
from core.db import Database
from core.mailer import MailServer
from core.secret_box import SecretBox

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=6)
LEASE = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    return min(BASE_DELAY * (2 ** max(attempts - 1, 0)), MAX_DELAY)


def _describe(exc: BaseException) -> str:
    """An error as stored and logged: its type and message."""
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class _Claimed:
    id: int
    channel: str
    recipient: str | None
    subject: str | None
    body: str
    attempts: int


@dataclass
class DrainResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0


class OutboxDeliverer:
    """Drains one database's outbox; thread-safe, one instance per app."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        mail: MailServer | None,
        *,
        http: httpx.Client | None = None,
        batch: int = 50,
    ) -> None:
        self.db = db
        self.box = box
        self.mail = mail
        self.http = http or httpx.Client(timeout=httpx.Timeout(10.0), follow_redirects=False)
        self.batch = batch

    def drain_once(self, now: datetime | None = None) -> DrainResult:
        """Deliver every row due at ``now``; what happened to them."""
        result = DrainResult()
        while True:
            moment = now or utcnow()
            claimed = self._claim(moment)
            if not claimed:
                return result
            webhook = self._webhook_target()
            for row in claimed:
                self._deliver(row, webhook, moment, result)

    def _any_due(self, now: datetime) -> bool:
        """A read first: the common answer (nothing due) takes no write lock."""
        with self.db.raw_read() as cur:
            return (
                cur.scalar(
                    "SELECT 1 FROM outbox_messages WHERE status = 'pending'"
                    " AND next_attempt_at <= :now LIMIT 1",
                    {"now": cur.db_value(now)},
                )
                is not None
            )

    def _claim(self, now: datetime) -> list[_Claimed]:
        if not self._any_due(now):
            return []
        with self.db.raw_write() as cur:
            due = cur.execute(
                "SELECT id FROM outbox_messages WHERE status = 'pending'"
                " AND next_attempt_at <= :now AND (lease_until IS NULL OR lease_until < :now)"
                " ORDER BY id LIMIT :n",
                {"now": cur.db_value(now), "n": self.batch},
            ).fetchall()
            claimed = []
            for (row_id,) in due:
                row = cur.execute(
                    "UPDATE outbox_messages SET lease_until = :until, attempts = attempts + 1"
                    " WHERE id = :id AND status = 'pending' AND next_attempt_at <= :now"
                    " AND (lease_until IS NULL OR lease_until < :now)"
                    " RETURNING id, channel, recipient, subject, body, attempts",
                    {
                        "id": row_id,
                        "now": cur.db_value(now),
                        "until": cur.db_value(now + LEASE),
                    },
                ).fetchone()
                if row is not None:
                    claimed.append(_Claimed(*row))
            return claimed

    def _webhook_target(self) -> tuple[str, str] | None:
        with self.db.read_session() as session:
            current = settings_mod.load(session)
        if not current.webhook_url or not current.webhook_secret:
            return None
        return current.webhook_url, self.box.open(current.webhook_secret)

    def _deliver(
        self,
        row: _Claimed,
        webhook: tuple[str, str] | None,
        now: datetime,
        result: DrainResult,
    ) -> None:
        send: Callable[[], None] | None = None
        if row.channel == "email" and self.mail is not None and row.recipient:
            mail, to = self.mail, row.recipient
            send = lambda: mail.send(to, row.subject or "", row.body)  # noqa: E731
        elif row.channel == "webhook" and webhook is not None:
            from core.webhook_signing import post

            url, secret = webhook
            send = lambda: post(self.http, url, secret, row.body)  # noqa: E731
        if send is None:
            self._record(row, now, status="skipped", error="not configured")
            result.skipped += 1
            return
        try:
            send()
        except Exception as exc:  # any failure of the far side: retried
            error = _describe(exc)[:500]
            log.warning("outbox row %s attempt %s failed: %s", row.id, row.attempts, error)
            if row.attempts >= MAX_ATTEMPTS:
                self._record(row, now, status="failed", error=error)
                result.failed += 1
            else:
                self._record(row, now, status="pending", error=error)
                result.retrying += 1
            return
        self._record(row, now, status="sent", error=None)
        result.sent += 1

    def _record(self, row: _Claimed, now: datetime, *, status: str, error: str | None) -> None:
        values: dict[str, Any] = {
            "id": row.id,
            "attempts": row.attempts,
            "status": status,
            "error": error,
        }
        with self.db.raw_write() as cur:
            values["next"] = cur.db_value(now + backoff(row.attempts))
            values["sent"] = cur.db_value(utcnow()) if status == "sent" else None
            cur.execute(
                "UPDATE outbox_messages SET status = :status, last_error = :error,"
                " lease_until = NULL, sent_at = :sent, next_attempt_at = :next"
                " WHERE id = :id AND attempts = :attempts",
                values,
            )


class OutboxThread:
    """The app's background drainer: drains now and then, and soon after a
    committed write that added messages."""

    def __init__(self, deliverer: OutboxDeliverer, poll_seconds: float) -> None:
        self.deliverer = deliverer
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.nudges = 0  # wake-ups asked for; for tests
        self.failures = 0  # drains failed in a row (``drain_round``)

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
            self._thread.start()

    def nudge(self) -> None:
        self._wake.set()
        self.nudges += 1

    def after_commit(self) -> None:
        """A write committed on this thread: drain soon if it added messages."""
        if outbox.take_written():
            self.nudge()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def drain_round(self) -> None:
        """One drain, never raising: with the database away, the next round tries
        again. The first failure of a run of them is logged with its traceback,
        each later one as a single line, and the first success after them says
        so, so an outage reads as three kinds of line rather than a traceback
        every ``poll_seconds``."""
        try:
            self.deliverer.drain_once()
        except Exception as exc:
            self.failures += 1
            if self.failures == 1:
                log.exception("outbox drain failed; retrying every %ss", self.poll_seconds)
            else:
                log.warning(
                    "outbox drain failed again (%d rounds in a row): %s",
                    self.failures,
                    _describe(exc).splitlines()[0][:300],
                )
            return
        if self.failures:
            log.warning("outbox drain works again after %d failed rounds", self.failures)
            self.failures = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.drain_round()
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
