"""The usage API at the edges of its numbers and dates (core.bounds).

Every value the schema accepts is answered without a 5xx: a token count or a
cost beyond a cap is 422 limit_exceeded and stored as a rejected event, even
when ``tokens x price x rate`` is far past 64 bits; a timestamp outside the
years 2000-2099 is a 400 with a field error, stored nowhere (as every 400).
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from blueprints.api.openapi import openapi_document
from blueprints.api.validation import OCCURRED_AT_PATTERN, RequestInvalid, parse_usage
from core.bounds import MAX_AMOUNT_UCR, MAX_PRICE_UUSD_PER_M, MAX_RATE, MAX_TOKENS
from core.models import LedgerEntry, UsageEvent
from core.pricing import MICRO as CR
from tests.api_client import Api, event
from tests.conftest import Billing


def _raw(api: Api, path: str, body: str):
    """POST a JSON text as is, so numbers like ``1e15`` reach the parser unchanged."""
    headers = {**api.headers(), "Content-Type": "application/json"}
    return api.client.post(path, data=body.encode(), headers=headers)


def _stored(billing: Billing, event_id: str) -> UsageEvent:
    with billing.db.read_session() as s:
        return s.scalars(select(UsageEvent).where(UsageEvent.event_id == event_id)).one()


def _max_priced(billing: Billing) -> None:
    """A model at the highest price, the highest rate, and caps at their highest."""
    billing.set_price("max-model", MAX_PRICE_UUSD_PER_M, MAX_PRICE_UUSD_PER_M)
    billing.set_rate(MAX_RATE)
    billing.set(max_credits_per_event_ucr=MAX_AMOUNT_UCR)


OVERSIZED = [
    ('"input_tokens": 9007199254740991, "output_tokens": 0', "gpt-4o-mini"),
    ('"input_tokens": 0, "output_tokens": 9007199254740991', "gpt-4o-mini"),
    ('"input_tokens": 1e15, "output_tokens": 0', "gpt-4o-mini"),
    ('"input_tokens": 1E+15, "output_tokens": 1.0e3', "gpt-4o-mini"),
    # Within the token cap, but the cost passes 64 bits: 10^7 x 10^12 x 10^9 / 10^6.
    ('"input_tokens": 10000000, "output_tokens": 0', "max-model"),
    ('"input_tokens": 5000000, "output_tokens": 5000000', "max-model"),
]


@pytest.mark.parametrize(("tokens", "model"), OVERSIZED)
def test_oversized_single_event_is_422_and_stored(
    api: Api, billing: Billing, tokens: str, model: str
) -> None:
    billing.user("alice@example.com", 100 * CR)
    _max_priced(billing)
    body = f'{{"event_id": "big", "user": "alice@example.com", "model": "{model}", {tokens}}}'
    response = _raw(api, "/api/v1/usage", body)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "limit_exceeded"
    assert "exceed the cap" in error["message"]
    stored = _stored(billing, "big")
    assert (stored.status, stored.reason_code) == ("rejected", "limit_exceeded")
    assert stored.reason == error["message"]
    assert stored.input_tokens + stored.output_tokens >= 10_000_000  # as sent, not clamped
    assert stored.cost_ucr is None or stored.cost_ucr <= MAX_AMOUNT_UCR
    assert billing.balance("alice@example.com") == 100 * CR
    # A replay answers the same, from the stored row.
    again = _raw(api, "/api/v1/usage", body)
    assert (again.status_code, again.get_json()["error"]["code"]) == (422, "limit_exceeded")
    assert billing.problems() == []


def test_cost_past_64_bits_is_stored_without_it_and_stated_in_the_reason(
    api: Api, billing: Billing
) -> None:
    billing.user("alice@example.com", 100 * CR)
    _max_priced(billing)
    response = api.usage(event_id="huge", model="max-model", input_tokens=10**7, output_tokens=0)
    assert response.status_code == 422
    stored = _stored(billing, "huge")
    cost_credits = 10**7 * MAX_PRICE_UUSD_PER_M * MAX_RATE // 10**12  # exact, in credits
    assert f"{cost_credits} credits exceed the cap" in stored.reason
    assert stored.cost_ucr is None  # 10^22 µcr does not fit the column


@pytest.mark.parametrize(("tokens", "model"), OVERSIZED)
def test_batch_of_999_valid_and_one_oversized_charges_the_999(
    api: Api, billing: Billing, tokens: str, model: str
) -> None:
    each = 450_000 * CR  # the spec's example event at 10^9 credits per USD
    billing.user("alice@example.com", 1_000 * each)
    _max_priced(billing)
    valid = [
        json.dumps(event(event_id=f"ok-{n}", occurred_at="2026-11-24T10:00:00Z"))
        for n in range(999)
    ]
    oversized = f'{{"event_id": "big", "user": "alice@example.com", "model": "{model}", {tokens}}}'
    body = '{"events": [' + ", ".join([*valid[:500], oversized, *valid[500:]]) + "]}"
    response = _raw(api, "/api/v1/usage/batch", body)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert len(results) == 1000
    assert [r["status"] for r in results].count("charged") == 999
    assert results[500]["event_id"] == "big"
    assert results[500]["status"] == "rejected"
    assert results[500]["error"]["code"] == "limit_exceeded"
    assert billing.balance("alice@example.com") == each
    assert _stored(billing, "big").reason_code == "limit_exceeded"
    with billing.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(UsageEvent)) == 1000
        assert s.scalar(select(func.count()).where(LedgerEntry.kind == "usage")) == 999
    assert billing.problems() == []


@pytest.mark.parametrize(
    "occurred_at",
    [
        "0001-01-01T00:00:00+14:00",  # no UTC equivalent in Python's calendar
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59:59Z",
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
    ],
)
def test_occurred_at_outside_the_years_2000_to_2099_is_400(
    api: Api, billing: Billing, occurred_at: str
) -> None:
    billing.user("alice@example.com", 100 * CR)
    single = api.usage(occurred_at=occurred_at)
    assert single.status_code == 400
    error = single.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]["fields"] == {"occurred_at": "Must be in the years 2000 to 2099."}
    batch = api.batch([event(event_id="b1", occurred_at=occurred_at), event(event_id="b2")])
    assert [r["status"] for r in batch.get_json()["results"]] == ["rejected", "charged"]
    assert batch.get_json()["results"][0]["error"]["code"] == "invalid_request"
    with billing.db.read_session() as s:
        assert s.scalars(select(UsageEvent.event_id)).all() == ["b2"]  # 400s are not stored


@pytest.mark.parametrize(
    ("occurred_at", "stored"),
    [
        ("2000-01-01T00:00:00+14:00", "1999-12-31 10:00:00"),
        ("2099-12-31T23:59:59-14:00", "2100-01-01 13:59:59"),
    ],
)
def test_occurred_at_range_is_the_year_as_written(
    api: Api, billing: Billing, occurred_at: str, stored: str
) -> None:
    billing.user("alice@example.com", 100 * CR)
    assert api.usage(occurred_at=occurred_at).status_code == 201
    assert str(_stored(billing, "msg-7f3a").occurred_at) == stored


def test_openapi_document_states_the_bounds_the_validator_applies() -> None:
    schema = openapi_document()["components"]["schemas"]["UsageEvent"]["properties"]
    assert schema["input_tokens"]["maximum"] == schema["output_tokens"]["maximum"] == MAX_TOKENS
    assert "limit_exceeded" in schema["input_tokens"]["description"]
    occurred = schema["occurred_at"]["anyOf"][0]
    assert occurred["pattern"] == OCCURRED_AT_PATTERN
    pattern = re.compile(occurred["pattern"])
    for year in (1999, 2000, 2050, 2099, 2100):
        text = f"{year:04d}-06-01T00:00:00Z"
        try:
            parse_usage(event(occurred_at=text))
            accepted = True
        except RequestInvalid:
            accepted = False
        assert accepted == bool(pattern.search(text)), year


# --- every number the API takes, at random ---------------------------------------

_NUMBER = st.one_of(
    st.integers(0, MAX_TOKENS),
    st.sampled_from([0, 1, 10**7, 10**7 + 1, 10**9, MAX_TOKENS, MAX_TOKENS + 1, -1, 10**30]),
    st.integers(0, 10**20),
).map(str) | st.sampled_from(["1e15", "1E+15", "9.007199254740991e15", "1.5", "1.0", "2e400"])
_events = itertools.count()


@given(
    input_tokens=_NUMBER,
    output_tokens=_NUMBER,
    model=st.sampled_from(["gpt-4o-mini", "max-model"]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_number_answers_5xx_and_the_ledger_stays_whole(
    priced_api: tuple[Api, Billing], input_tokens: str, output_tokens: str, model: str
) -> None:
    api, billing = priced_api
    event_id = f"h-{next(_events)}"
    body = (
        f'{{"event_id": "{event_id}", "user": "alice@example.com", "model": "{model}",'
        f' "input_tokens": {input_tokens}, "output_tokens": {output_tokens}}}'
    )
    response = _raw(api, "/api/v1/usage", body)
    assert response.status_code in (201, 400, 402, 422), response.get_data(as_text=True)
    with billing.db.read_session() as s:
        stored = s.scalars(select(UsageEvent).where(UsageEvent.event_id == event_id)).all()
    if response.status_code == 400:
        assert stored == []
    else:
        (row,) = stored
        code: Any = response.get_json().get("error", {}).get("code")
        assert row.reason_code == code
        assert row.cost_ucr is None or abs(row.cost_ucr) <= MAX_AMOUNT_UCR
    assert billing.problems() == []


@pytest.fixture
def priced_api(api: Api, billing: Billing) -> tuple[Api, Billing]:
    billing.user("alice@example.com", MAX_AMOUNT_UCR)
    _max_priced(billing)
    billing.set(max_tokens_per_event=10**9)
    return api, billing
