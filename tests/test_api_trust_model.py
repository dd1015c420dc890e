"""What the README documents as "by design" about integration keys and the
usage API, pinned by tests so a change to any of it is a conscious one."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from core.pricing import MICRO as CR
from tests.conftest import Billing


def _post(client: FlaskClient, key: str, body: str):
    return client.post(
        "/api/v1/usage",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def _event(event_id: str, user: str, input_tokens: int = 1000) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "user": user,
            "model": "gpt-4o-mini",
            "input_tokens": input_tokens,
            "output_tokens": 500,
        }
    )


def test_one_key_debits_and_reads_any_user(client: FlaskClient, billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    billing.user("bob@example.com", 100 * CR)
    key = billing.api_key()
    for user in ("alice@example.com", "bob@example.com"):
        assert _post(client, key, _event(f"e-{user}", user)).status_code == 201
        answer = client.get(
            "/api/v1/balance",
            query_string={"user": user},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200
        assert answer.get_json()["balance"] == "95.5"


def test_same_event_id_through_two_keys_is_two_events(
    client: FlaskClient, billing: Billing
) -> None:
    billing.user("alice@example.com", 100 * CR)
    first, second = billing.api_key("dify"), billing.api_key("gateway")
    one = _post(client, first, _event("msg-1", "alice@example.com"))
    two = _post(client, second, _event("msg-1", "alice@example.com"))
    assert (one.status_code, two.status_code) == (201, 201)
    assert two.get_json()["duplicate"] is False
    assert billing.balance("alice@example.com") == 91 * CR
    # Through the first key again it is a replay.
    again = _post(client, first, _event("msg-1", "alice@example.com"))
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert billing.problems() == []


def test_duplicate_json_keys_last_one_wins(client: FlaskClient, billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    key = billing.api_key()
    body = (
        '{"event_id": "dup-keys", "user": "alice@example.com", "model": "gpt-4o-mini",'
        ' "input_tokens": 1, "input_tokens": 1000, "output_tokens": 500}'
    )
    answer = _post(client, key, body)
    assert answer.status_code == 201
    assert answer.get_json()["credits_charged"] == "4.5"  # 1,000 input tokens, not 1
    # The same parsed body with the key once is the same payload: a replay.
    replay = _post(client, key, _event("dup-keys", "alice@example.com"))
    assert replay.status_code == 200
    assert replay.get_json()["duplicate"] is True
