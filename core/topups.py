"""Top-up options as users see them: dollars in, exact credits out."""

from __future__ import annotations

from dataclasses import dataclass

from core.pricebook import PriceBook
from core.pricing import credits_for_cents


@dataclass(frozen=True)
class TopUpOption:
    amount_usd: int
    credits_ucr: int


def options(book: PriceBook) -> list[TopUpOption]:
    rate = book.credits_per_usd
    return [
        TopUpOption(usd, credits_for_cents(usd * 100, rate))
        for usd in book.settings.topup_options_usd
    ]
