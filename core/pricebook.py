"""The price book: current rate, model prices and settings, cached per process.

Loading it takes a few queries; checking it is one: ``SELECT version FROM
config_version``. Every change to a rate, a price or a setting increments that
counter in the same transaction, so a worker that reads the counter inside its
own transaction either sees the change and reloads, or ran before the change
committed. No worker ever charges with a price older than the last committed
change (the original design's one-minute cache could).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core import settings as settings_mod
from core.rawdb import RawCursor


@dataclass(frozen=True)
class ModelPrice:
    id: int
    name: str
    display_name: str
    input_uusd_per_m: int
    output_uusd_per_m: int
    enabled: bool
    price_version_id: int | None


@dataclass(frozen=True)
class PriceBook:
    version: int
    credits_per_usd: int
    rate_version_id: int
    models: Mapping[str, ModelPrice]
    settings: settings_mod.Settings


def load_price_book(cursor: RawCursor, version: int) -> PriceBook:
    rate_id, credits_per_usd = cursor.execute(
        "SELECT id, credits_per_usd FROM exchange_rate_history ORDER BY id DESC LIMIT 1"
    ).fetchone()
    models = {
        name: ModelPrice(mid, name, display, price_in, price_out, bool(enabled), version_id)
        for mid, name, display, price_in, price_out, enabled, version_id in cursor.execute(
            "SELECT id, name, display_name, input_price_uusd_per_m, output_price_uusd_per_m,"
            " enabled, price_version_id FROM ai_models"
        ).fetchall()
    }
    settings = settings_mod.from_rows(cursor.execute("SELECT key, value FROM settings").fetchall())
    return PriceBook(version, credits_per_usd, rate_id, models, settings)


# The statement whose answer ``at_version`` takes (a caller may send it with its own).
VERSION_SQL = "SELECT version FROM config_version"


class PriceBookCache:
    """One per app (per process). Thread-safe: the book is immutable and swapped whole."""

    def __init__(self) -> None:
        self._book: PriceBook | None = None
        self._lock = threading.Lock()
        self.loads = 0  # how many times the book was (re)loaded; for tests and benchmarks

    def get(self, session: Session) -> PriceBook:
        """The book as of ``session``'s transaction."""
        cursor = RawCursor.of_session(session)
        try:
            return self.current(cursor)
        finally:
            cursor.close()

    def current(self, cursor: RawCursor) -> PriceBook:
        """The book as of ``cursor``'s transaction: one SELECT when unchanged."""
        return self.at_version(cursor, cursor.scalar(VERSION_SQL))

    @property
    def cached(self) -> PriceBook | None:
        """The book last loaded, without a query (None before the first); a
        caller must check its version against one read in its transaction."""
        return self._book

    def at_version(self, cursor: RawCursor, version: int) -> PriceBook:
        """The book for a ``config_version`` the caller read in ``cursor``'s
        transaction (its own query may carry it, saving a round trip)."""
        book = self._book
        if book is not None and book.version == version:
            return book
        with self._lock:
            book = load_price_book(cursor, version)
            self._book = book
            self.loads += 1
        return book
