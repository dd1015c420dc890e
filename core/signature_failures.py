"""Webhook deliveries whose signature did not verify, counted for the admins.

A wrong ``STRIPE_WEBHOOK_SECRET`` makes every Stripe delivery fail its
signature check; the webhook answers 400 and Stripe retries for days, while
top-ups paid late, refunds and disputes never arrive. Nothing else would tell
the operator, so each refused delivery is counted here and the admin settings
page shows how many, since when and the last one (``core.stripe_status``).

Cost under a flood. Anyone can POST junk to the webhook URL, so recording
must not let them grow the database or queue up writes: there is **one row
per source** (``stripe``), updated in place (``failures + n``, ``last_at``),
and each process has **at most one such write in flight**. Deliveries refused
while it runs are added up in memory and written by that same writer in its
next round (``Recorder.failed``), so a flood costs one small UPDATE at a time
per process and the count stays exact. If the database cannot be written, the
count waits in memory for the next refused delivery; the answer is 400 either
way. ``/metrics`` counts them too
(``creditline_stripe_webhook_signature_failures_total``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import metrics
from core.clock import utcnow
from core.db import Database
from core.models import Base

log = logging.getLogger(__name__)

STRIPE = "stripe"


class SignatureFailure(Base):
    """Refused deliveries of one webhook source: how many, the first and the last."""

    __tablename__ = "webhook_signature_failures"

    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    failures: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]


_UPSERT = (
    "INSERT INTO webhook_signature_failures (source, failures, first_at, last_at)"
    " VALUES (:source, :n, :first, :last)"
    " ON CONFLICT (source) DO UPDATE SET"
    " failures = webhook_signature_failures.failures + excluded.failures,"
    " last_at = excluded.last_at"
)


def add(db: Database, source: str, n: int, first: datetime, last: datetime) -> None:
    """Add ``n`` refused deliveries (the first at ``first``, the last at ``last``)."""
    with db.raw_write() as cur:
        cur.execute(
            _UPSERT,
            {"source": source, "n": n, "first": cur.db_value(first), "last": cur.db_value(last)},
        )


class Recorder:
    """One process's recorder for one source: at most one write in flight."""

    def __init__(self, db: Database, source: str = STRIPE) -> None:
        self.db = db
        self.source = source
        self._lock = threading.Lock()
        self._pending = 0
        self._first: datetime | None = None
        self._last: datetime | None = None
        self._writing = False

    def failed(self) -> None:
        """A delivery's signature did not verify: count it (see the module)."""
        metrics.STRIPE_SIGNATURE_FAILURES.inc()
        now = utcnow()
        with self._lock:
            self._pending += 1
            self._first = self._first or now
            self._last = now
            if self._writing:
                return  # the writer in flight takes it in its next round
            self._writing = True
        self._write_pending()

    def _write_pending(self) -> None:
        while True:
            with self._lock:
                n, first, last = self._pending, self._first, self._last
                if n == 0 or first is None or last is None:
                    self._writing = False
                    return
                self._pending, self._first, self._last = 0, None, None
            try:
                add(self.db, self.source, n, first, last)
            except Exception:
                log.warning("could not record %d refused %s webhook(s)", n, self.source)
                with self._lock:  # kept for the next refused delivery to write
                    self._pending += n
                    self._first = min(first, self._first or first)
                    self._last = max(last, self._last or last)
                    self._writing = False
                return


@dataclass(frozen=True)
class Failures:
    count: int
    first_at: datetime
    last_at: datetime


def of(session: Session, source: str = STRIPE) -> Failures | None:
    """What has been recorded for ``source``; None if nothing."""
    row = session.scalar(select(SignatureFailure).where(SignatureFailure.source == source))
    if row is None or row.failures == 0:
        return None
    return Failures(row.failures, row.first_at, row.last_at)
