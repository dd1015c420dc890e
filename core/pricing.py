"""Pricing arithmetic: integers in, integers out. Decimal only at the edges.

Units (spec §1):
    prices   integer micro-USD per 1M tokens   ($0.15 / 1M  -> 150_000)
    rate     integer credits per USD           (1 .. 10^9)
    amounts  integer micro-credits (µcr)       (4.5 credits -> 4_500_000)

Cost of a usage event in µcr:

    ceil((input_tokens * input_price + output_tokens * output_price)
         * credits_per_usd / 10^6)

Why divide by 10^6: tokens x price is micro-USD x 10^6 (the price is per
million tokens); times the rate (credits per USD) that is micro-credits x 10^6.
Ceil so that no event is ever free: 1 token of a $0.075/1M model at one
credit per USD still costs 1 µcr.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from core import bounds
from core.bounds import MAX_RATE
from core.errors import AmountError as AmountError  # raised by the parsers below

MICRO = 1_000_000  # µ-units per unit, for both USD prices and credits
# Upper bounds on what a form may enter (core.bounds explains them), far above
# any real price or balance, so a typo cannot overflow a 64-bit column.
MAX_PRICE_USD_PER_M = Decimal(bounds.MAX_PRICE_USD_PER_M)  # $1M per 1M tokens
MAX_CREDITS = Decimal(bounds.MAX_CREDITS)


def usage_cost_ucr(
    input_tokens: int,
    output_tokens: int,
    input_price_uusd_per_m: int,
    output_price_uusd_per_m: int,
    credits_per_usd: int,
) -> int:
    """Cost in µcr, exact: integer ceil division of the rational value."""
    for value in (
        input_tokens,
        output_tokens,
        input_price_uusd_per_m,
        output_price_uusd_per_m,
        credits_per_usd,
    ):
        if type(value) is not int or value < 0:
            raise TypeError(f"pricing takes non-negative ints, got {value!r}")
    numerator = (
        input_tokens * input_price_uusd_per_m + output_tokens * output_price_uusd_per_m
    ) * credits_per_usd
    return -(-numerator // MICRO)


def credits_for_cents(cents: int, credits_per_usd: int) -> int:
    """µcr bought by a payment of ``cents`` at ``credits_per_usd`` (exact)."""
    # cents/100 USD * rate credits/USD * 10^6 µcr/credit
    return cents * credits_per_usd * MICRO // 100


# --- parsing (edges: forms, CLI, API) ----------------------------------------


def _decimal(text: str | int | Decimal, what: str) -> Decimal:
    if isinstance(text, float | bool):
        raise AmountError(f"{what} must be given as text or an integer, not a float")
    try:
        value = Decimal(str(text).strip()) if not isinstance(text, Decimal) else text
    except InvalidOperation:
        raise AmountError(f"{what} must be a number") from None
    if not value.is_finite():
        raise AmountError(f"{what} must be a finite number")
    # Refuse exponents outright: "1e999999" is valid Decimal but not an amount.
    if "e" in str(text).lower():
        raise AmountError(f"{what} must be written without an exponent")
    return value


def _scaled(value: Decimal, places: int, what: str) -> int:
    """``value`` x 10^places as an exact int, from the digits themselves.

    Not ``value.scaleb(places)``: Decimal arithmetic rounds to the context's 28
    digits, so "1.0000000000000000000000000001" would pass as exactly 1.
    """
    sign, digits, exponent = value.as_tuple()
    kept = list(digits)
    assert isinstance(exponent, int)  # finite: _decimal checked
    while kept and kept[-1] == 0 and exponent < -places:  # trailing zeros carry nothing
        kept.pop()
        exponent += 1
    if not any(kept):
        return 0
    if exponent < -places:
        raise AmountError(f"{what} has more than {places} decimal places")
    scaled = int("".join(map(str, kept))) * 10 ** (exponent + places)
    return -scaled if sign else scaled


def parse_usd_per_m(text: str | int | Decimal) -> int:
    """'0.15' (USD per 1M tokens) -> 150000 micro-USD per 1M tokens."""
    value = _decimal(text, "Price")
    if value < 0:
        raise AmountError("Price cannot be negative")
    if value > MAX_PRICE_USD_PER_M:
        raise AmountError(f"Price cannot exceed ${MAX_PRICE_USD_PER_M:,} per 1M tokens")
    return _scaled(value, 6, "Price")


def parse_credits(text: str | int | Decimal, *, allow_negative: bool = False) -> int:
    """'4.5' credits -> 4500000 µcr."""
    value = _decimal(text, "Credits")
    if value < 0 and not allow_negative:
        raise AmountError("Credits cannot be negative")
    if abs(value) > MAX_CREDITS:
        raise AmountError(f"Credits cannot exceed {MAX_CREDITS:,}")
    return _scaled(value, 6, "Credits")


def parse_rate(text: str | int | Decimal) -> int:
    """Credits per USD: a whole number from 1 to 10^9."""
    value = _decimal(text, "Rate")
    if value != value.to_integral_value():
        raise AmountError("Rate must be a whole number of credits per USD")
    if not 1 <= value <= MAX_RATE:
        raise AmountError(f"Rate must be between 1 and {MAX_RATE:,} credits per USD")
    return int(value)


# --- formatting ---------------------------------------------------------------


def format_credits(ucr: int) -> str:
    """Exact decimal string, no trailing zeros: 4500000 -> '4.5', 1500 -> '0.0015'.

    Used for JSON (spec: amounts are exact decimal strings). Never rounds.
    """
    sign = "-" if ucr < 0 else ""
    whole, frac = divmod(abs(ucr), MICRO)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:06d}".rstrip("0")


def format_credits_display(ucr: int, places: int = 2) -> str:
    """For people: thousands separators, truncated (never rounded up) to ``places``.

    A balance of 0.999 credits shows as 0.99, not 1.00: users are never shown
    credits they do not have.
    """
    step = 10 ** (6 - places)
    truncated = (abs(ucr) // step) * step
    sign = "-" if ucr < 0 and truncated else ""
    whole, frac = divmod(truncated, MICRO)
    text = f"{whole:,}"
    if places:
        text += "." + f"{frac:06d}"[:places]
    return sign + text


def format_usd_per_m(uusd_per_m: int) -> str:
    """150000 -> '0.15' (USD per 1M tokens), exact."""
    return format_credits(uusd_per_m)  # same scale: 6 decimal places


def format_cents(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"
