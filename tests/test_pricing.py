"""Pricing arithmetic (spec §1): exact integers, ceil to the micro-credit."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import ceil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.pricing import (
    AmountError,
    credits_for_cents,
    format_cents,
    format_credits,
    format_credits_display,
    parse_credits,
    parse_rate,
    parse_usd_per_m,
    usage_cost_ucr,
)

GPT_4O_MINI = (150_000, 600_000)  # $0.15 / $0.60 per 1M tokens


# --- the spec's worked examples, exactly ---------------------------------------


def test_spec_example_gpt_4o_mini_1000_in_500_out() -> None:
    assert usage_cost_ucr(1000, 500, *GPT_4O_MINI, 10_000) == 4_500_000
    assert format_credits(4_500_000) == "4.5"


def test_spec_example_one_input_token_is_charged_not_rounded_away() -> None:
    assert usage_cost_ucr(1, 0, *GPT_4O_MINI, 10_000) == 1_500
    assert format_credits(1_500) == "0.0015"


def test_spec_example_ceil_never_zero() -> None:
    assert usage_cost_ucr(1, 0, 75_000, 0, 1) == 1


def test_spec_example_25_dollar_top_up() -> None:
    assert credits_for_cents(2500, 10_000) == 250_000_000_000
    assert format_credits(250_000_000_000) == "250000"


def test_zero_tokens_cost_nothing() -> None:
    assert usage_cost_ucr(0, 0, *GPT_4O_MINI, 10_000) == 0


@pytest.mark.parametrize("bad", [1.0, -1, True, "1", None])
def test_cost_refuses_non_integers_and_negatives(bad: object) -> None:
    with pytest.raises(TypeError):
        usage_cost_ucr(bad, 0, *GPT_4O_MINI, 10_000)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------

tokens = st.integers(min_value=0, max_value=10**9)
prices = st.integers(min_value=0, max_value=10**12)
rates = st.integers(min_value=1, max_value=10**9)


@given(tokens, tokens, prices, prices, rates)
def test_cost_is_exactly_the_ceil_of_the_rational_value(i, o, pi, po, r) -> None:
    exact = Fraction((i * pi + o * po) * r, 10**6)
    assert usage_cost_ucr(i, o, pi, po, r) == ceil(exact)


@given(tokens, tokens, prices, prices, rates, st.integers(0, 10**6), st.integers(0, 10**6))
def test_cost_is_monotonic_in_tokens(i, o, pi, po, r, di, do) -> None:
    base = usage_cost_ucr(i, o, pi, po, r)
    assert base >= 0
    assert usage_cost_ucr(i + di, o, pi, po, r) >= base
    assert usage_cost_ucr(i, o + do, pi, po, r) >= base


@given(tokens, tokens, prices, prices, rates, st.integers(0, 10**6), st.integers(0, 10**6))
def test_cost_is_monotonic_in_price_and_rate(i, o, pi, po, r, dp, dr) -> None:
    base = usage_cost_ucr(i, o, pi, po, r)
    assert usage_cost_ucr(i, o, pi + dp, po, r) >= base
    assert usage_cost_ucr(i, o, pi, po + dp, r) >= base
    assert usage_cost_ucr(i, o, pi, po, r + dr) >= base


@given(tokens, tokens, prices, prices, rates)
def test_any_nonzero_usage_costs_at_least_one_micro_credit(i, o, pi, po, r) -> None:
    if i * pi + o * po > 0:
        assert usage_cost_ucr(i, o, pi, po, r) >= 1


# --- parsing at the edges ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.15", 150_000),
        ("0.6", 600_000),
        ("2.50", 2_500_000),
        ("0", 0),
        ("0.000001", 1),
        (3, 3_000_000),
    ],
)
def test_parse_usd_per_m(text: str, expected: int) -> None:
    assert parse_usd_per_m(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-0.15", "negative"),
        ("0.0000001", "more than 6 decimal places"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("-inf", "finite"),
        ("1e3", "exponent"),
        ("1E999999999", "exponent"),
        ("abc", "number"),
        ("", "number"),
        ("1,5", "number"),
        ("1000001", "cannot exceed"),
    ],
)
def test_parse_usd_per_m_rejects(text: str, message: str) -> None:
    with pytest.raises(AmountError, match=message):
        parse_usd_per_m(text)


def test_parsers_refuse_floats() -> None:
    with pytest.raises(AmountError, match="float"):
        parse_usd_per_m(0.15)  # type: ignore[arg-type]
    with pytest.raises(AmountError, match="float"):
        parse_credits(4.5)  # type: ignore[arg-type]


def test_parse_credits() -> None:
    assert parse_credits("4.5") == 4_500_000
    assert parse_credits(" 250000 ") == 250_000_000_000
    assert parse_credits("-10", allow_negative=True) == -10_000_000
    with pytest.raises(AmountError, match="negative"):
        parse_credits("-10")
    with pytest.raises(AmountError, match="decimal places"):
        parse_credits("0.0000005")
    with pytest.raises(AmountError, match="exceed"):
        parse_credits("1000000000001")


@pytest.mark.parametrize(
    "text",
    [
        "1.0000000000000000000000000001",  # 29 digits: Decimal's context would round it to 1
        "999999.99999999999999999999999",
        "0." + "1" * 5000,
    ],
)
def test_more_precision_than_the_unit_holds_is_refused_however_long(text: str) -> None:
    with pytest.raises(AmountError, match="more than 6 decimal places"):
        parse_credits(text)
    with pytest.raises(AmountError, match="more than 6 decimal places"):
        parse_usd_per_m(text)


@given(
    st.integers(min_value=-(10**18), max_value=10**18),
    st.integers(min_value=0, max_value=40),
)
def test_trailing_zeros_are_not_precision(ucr: int, zeros: int) -> None:
    text = format_credits(ucr)
    padded = text + ("." if "." not in text else "") + "0" * zeros if zeros else text
    assert parse_credits(padded, allow_negative=True) == ucr


@pytest.mark.parametrize(
    ("text", "expected"), [("10000", 10_000), ("1", 1), ("1000000000", 10**9), ("25.0", 25)]
)
def test_parse_rate(text: str, expected: int) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["0", "-5", "1000000001", "2.5", "NaN", "1e4", "ten"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(AmountError):
        parse_rate(text)


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_format_credits_round_trips_exactly(ucr: int) -> None:
    assert parse_credits(format_credits(ucr), allow_negative=True) == ucr
    assert Decimal(format_credits(ucr)) * 10**6 == ucr


def test_display_never_rounds_up() -> None:
    assert format_credits_display(999_999) == "0.99"
    assert format_credits_display(95_500_000) == "95.50"
    assert format_credits_display(1_234_567_890_000) == "1,234,567.89"
    assert format_credits_display(-1_500_000) == "-1.50"
    assert format_credits_display(-1) == "0.00"
    assert format_cents(2500) == "$25.00"
