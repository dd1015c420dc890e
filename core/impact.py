"""What a new exchange rate would change, for the admin's live preview.

All figures are exact integers computed with the same functions that charge
and credit for real (``core.pricing``), so the preview cannot disagree with
what the ledger will do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.bounds import exact_sum
from core.models import AiModel, Wallet
from core.pricebook import PriceBook
from core.pricing import MICRO, credits_for_cents, usage_cost_ucr

# The spec's example request, used to compare models: 1,000 in + 500 out.
SAMPLE_INPUT_TOKENS = 1_000
SAMPLE_OUTPUT_TOKENS = 500


@dataclass(frozen=True)
class Comparison:
    label: str
    now: int
    new: int


@dataclass(frozen=True)
class RateImpact:
    rate_now: int
    rate_new: int
    topups: list[Comparison]  # µcr bought by each option
    samples: list[Comparison]  # µcr for the sample request on each enabled model
    liability_ucr: int  # sum of all balances
    liability_cents_now: int  # its USD value at each rate (floored to the cent)
    liability_cents_new: int


def sample_cost(input_uusd_per_m: int, output_uusd_per_m: int, credits_per_usd: int) -> int:
    """µcr of the sample request (1,000 in + 500 out) for a model at a rate."""
    return usage_cost_ucr(
        SAMPLE_INPUT_TOKENS,
        SAMPLE_OUTPUT_TOKENS,
        input_uusd_per_m,
        output_uusd_per_m,
        credits_per_usd,
    )


def sample_costs(models: Iterable[AiModel], credits_per_usd: int) -> dict[int, int]:
    """µcr of the sample request on each model at a rate, by model id."""
    return {
        m.id: sample_cost(m.input_price_uusd_per_m, m.output_price_uusd_per_m, credits_per_usd)
        for m in models
    }


def liability_cents(ucr: int, credits_per_usd: int) -> int:
    """USD cents that ``ucr`` micro-credits are worth at a rate (floored)."""
    return ucr * 100 // (credits_per_usd * MICRO)


def rate_impact(session: Session, book: PriceBook, new_rate: int) -> RateImpact:
    now = book.credits_per_usd
    topups = [
        Comparison(
            f"${usd}", credits_for_cents(usd * 100, now), credits_for_cents(usd * 100, new_rate)
        )
        for usd in book.settings.topup_options_usd
    ]
    samples = [
        Comparison(
            model.name,
            sample_cost(model.input_uusd_per_m, model.output_uusd_per_m, now),
            sample_cost(model.input_uusd_per_m, model.output_uusd_per_m, new_rate),
        )
        for model in sorted(book.models.values(), key=lambda m: m.name)
        if model.enabled
    ]
    total = exact_sum(session, Wallet.balance_ucr)  # ten full wallets pass 64 bits
    return RateImpact(
        now,
        new_rate,
        topups,
        samples,
        int(total),
        liability_cents(int(total), now),
        liability_cents(int(total), new_rate),
    )
