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

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import settings as settings_mod
from core.models import AiModel, RateChange
from core.versions import config_version


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


def load_price_book(session: Session, version: int) -> PriceBook:
    rate = session.execute(
        select(RateChange.id, RateChange.credits_per_usd).order_by(RateChange.id.desc()).limit(1)
    ).one()
    models = {
        m.name: ModelPrice(
            m.id,
            m.name,
            m.display_name,
            m.input_price_uusd_per_m,
            m.output_price_uusd_per_m,
            m.enabled,
            m.price_version_id,
        )
        for m in session.scalars(select(AiModel))
    }
    return PriceBook(version, rate.credits_per_usd, rate.id, models, settings_mod.load(session))


class PriceBookCache:
    """One per app (per process). Thread-safe: the book is immutable and swapped whole."""

    def __init__(self) -> None:
        self._book: PriceBook | None = None
        self._lock = threading.Lock()
        self.loads = 0  # how many times the book was (re)loaded; for tests and benchmarks

    def get(self, session: Session) -> PriceBook:
        version = config_version(session)
        book = self._book
        if book is not None and book.version == version:
            return book
        with self._lock:
            book = load_price_book(session, version)
            self._book = book
            self.loads += 1
        return book
