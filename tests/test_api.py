"""The JSON API (spec §3): every status and error code, reached over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.models import IntegrationKey, Notification, UsageEvent, User
from core.pricing import MICRO as CR
from tests.api_client import Api, event
from tests.conftest import Billing


def test_spec_example_charges_201_then_replays_200(api: Api, billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    first = api.usage()
    assert first.status_code == 201
    assert first.get_json() == {
        "event_id": "msg-7f3a",
        "status": "charged",
        "duplicate": False,
        "credits_charged": "4.5",
        "balance": "95.5",
    }
    again = api.usage()
    assert again.status_code == 200
    assert again.get_json() == {**first.get_json(), "duplicate": True}
    assert billing.balance("alice@example.com") == 95_500_000


def test_conflicting_replay_is_409(api: Api, billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    api.usage()
    response = api.usage(output_tokens=501)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"
    assert billing.balance("alice@example.com") == 95_500_000


def test_insufficient_credits_is_402_with_notification(
    app: Flask, api: Api, billing: Billing
) -> None:
    billing.user("alice@example.com", 1 * CR)
    response = api.usage()
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_credits"
    assert error["details"]["event_id"] == "msg-7f3a"
    with billing.db.read_session() as s:
        assert s.scalars(select(UsageEvent.status)).one() == "rejected"
        assert s.scalars(select(Notification.kind)).one() == "usage_rejected"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"model": "no-such-model"}, "unknown_model"),
        ({"model": "retired"}, "model_disabled"),
        ({"input_tokens": 10_000_001}, "limit_exceeded"),
        ({"user": "ghost@example.com"}, "unknown_user"),
        ({"user": "gone@example.com"}, "user_disabled"),
    ],
)
def test_refusals_are_422_and_stored(api: Api, billing: Billing, fields, code) -> None:
    billing.set_price("retired", 1, 1, enabled=False)
    billing.user("alice@example.com", 100 * CR)
    gone = billing.user("gone@example.com", 100 * CR)
    with billing.db.write() as s:
        s.get(User, gone.id).is_disabled = True
    response = api.usage(**fields)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == code
    with billing.db.read_session() as s:
        stored = s.scalars(select(UsageEvent)).one()
    assert (stored.status, stored.reason_code) == ("rejected", code)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (event(input_tokens=-1), "input_tokens"),
        (event(input_tokens=1.5), "input_tokens"),
        (event(input_tokens="10"), "input_tokens"),
        (event(input_tokens=True), "input_tokens"),
        (event(input_tokens=10**30), "input_tokens"),
        (event(output_tokens=...), "output_tokens"),
        (event(event_id=...), "event_id"),
        (event(event_id=""), "event_id"),
        (event(event_id="x" * 201), "event_id"),
        (event(event_id="a\nb"), "event_id"),
        (event(user=7), "user"),
        (event(model=None), "model"),
        (event(occurred_at="yesterday"), "occurred_at"),
        (event(occurred_at="2026-11-24T10:00:00"), "occurred_at"),
        (event(conversation_id=["x"]), "conversation_id"),
        ({**event(), "surprise": 1}, "surprise"),
    ],
)
def test_invalid_events_are_400_with_field_details(api: Api, billing: Billing, body, field) -> None:
    billing.user("alice@example.com", 100 * CR)
    response = api.usage(body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["details"]["fields"]
    assert billing.balance("alice@example.com") == 100 * CR


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"input_tokens": NaN}', "application/json"),
        (b"1" * 5000, "application/json"),
        (b"\xff\xfe", "application/json"),
        (json.dumps(event()).encode(), "text/plain"),
        (b"event_id=x", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_bodies_are_400(api: Api, data: bytes, content_type: str) -> None:
    response = api.client.post(
        "/api/v1/usage", data=data, content_type=content_type, headers=api.headers()
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_oversized_body_is_413(api: Api) -> None:
    big = json.dumps({"events": [event(event_id="x" * 150)] * 20_000}).encode()
    assert len(big) > 2 * 1024 * 1024
    response = api.client.post(
        "/api/v1/usage/batch", data=big, content_type="application/json", headers=api.headers()
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer nope", "Basic abc", "Bearer cl_xxxxxxxx_yyyy"]
)
def test_missing_or_bad_key_is_401(client: FlaskClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.post("/api/v1/usage", json=event(), headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_401(api: Api, billing: Billing, client: FlaskClient) -> None:
    """The key was used (so this process remembers it) before it was revoked:
    every endpoint refuses it at once, and nothing is charged or stored."""
    from core import audit, integration_keys

    billing.user("alice@example.com", 100 * CR)
    assert api.usage().status_code == 201
    with billing.db.write() as s:
        key_id = s.scalars(select(IntegrationKey.id).order_by(IntegrationKey.id)).all()[-1]
        integration_keys.revoke(s, audit.CLI, key_id)
    headers = {"Authorization": f"Bearer {api.key}"}
    batch = {"events": [event(event_id="msg-3")]}
    for _ in range(2):  # found revoked in the transaction, then at the door
        refused = api.usage(event_id="msg-2")
        assert refused.status_code == 401
        assert refused.get_json()["error"]["code"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/api/v1/usage/batch", json=batch, headers=headers).status_code == 401
    assert client.get("/api/v1/balance?user=alice@example.com", headers=headers).status_code == 401
    assert billing.balance("alice@example.com") == 95_500_000
    with billing.db.read_session() as s:
        assert s.scalars(select(UsageEvent.event_id)).all() == ["msg-7f3a"]


def test_a_remembered_key_revoked_mid_batch_is_refused_in_the_transaction(
    api: Api, billing: Billing, client: FlaskClient
) -> None:
    """The batch endpoint trusts a remembered key at the door too."""
    from core import audit, integration_keys

    billing.user("alice@example.com", 100 * CR)
    headers = {"Authorization": f"Bearer {api.key}"}
    first = {"events": [event(event_id="b-1")]}
    assert client.post("/api/v1/usage/batch", json=first, headers=headers).status_code == 200
    with billing.db.write() as s:
        key_id = s.scalars(select(IntegrationKey.id).order_by(IntegrationKey.id)).all()[-1]
        integration_keys.revoke(s, audit.CLI, key_id)
    second = {"events": [event(event_id="b-2")]}
    assert client.post("/api/v1/usage/batch", json=second, headers=headers).status_code == 401
    assert billing.balance("alice@example.com") == 95_500_000


def test_wrong_secret_with_a_real_prefix_is_401(api: Api) -> None:
    forged = api.key[:11] + "_" + "A" * 43
    assert api.usage(key=forged).status_code == 401


def test_keys_are_stored_hashed_and_last_use_recorded(api: Api, billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    with billing.db.read_session() as s:
        row = s.scalars(select(IntegrationKey).order_by(IntegrationKey.id)).all()[-1]
    assert row.last_used_at is None
    assert api.key not in (row.key_hash, row.prefix)
    assert api.key.startswith(row.prefix)
    api.usage()
    with billing.db.read_session() as s:
        assert s.get(IntegrationKey, row.id).last_used_at is not None


def test_batch_one_result_per_event_in_order(api: Api, billing: Billing) -> None:
    billing.user("alice@example.com", 10 * CR)
    response = api.batch(
        [
            event(event_id="b1"),
            event(event_id="b2", model="nope"),
            event(event_id="b3", input_tokens=-5),
            "not an object",
            event(event_id="b1"),
            event(event_id="b4"),
            event(event_id="b5"),
        ]
    )
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(r["event_id"], r["status"]) for r in results] == [
        ("b1", "charged"),
        ("b2", "rejected"),
        ("b3", "rejected"),
        (None, "rejected"),
        ("b1", "charged"),
        ("b4", "charged"),
        ("b5", "rejected"),
    ]
    assert results[0] == {
        "event_id": "b1",
        "status": "charged",
        "duplicate": False,
        "credits_charged": "4.5",
        "balance": "5.5",
    }
    assert results[4]["duplicate"] is True
    assert [r["error"]["code"] for r in results if r["status"] == "rejected"] == [
        "unknown_model",
        "invalid_request",
        "invalid_request",
        "insufficient_credits",
    ]
    assert results[2]["error"]["details"]["fields"] == {"input_tokens": "Must not be negative."}
    assert billing.balance("alice@example.com") == 1 * CR


@pytest.mark.parametrize(
    "body",
    [{}, {"events": "x"}, {"events": []}, [], {"events": [event()] * 1001}, {"events": [], "x": 1}],
)
def test_malformed_batch_envelope_is_400(api: Api, body: Any) -> None:
    response = api.client.post("/api/v1/usage/batch", json=body, headers=api.headers())
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_balance_endpoint(api: Api, billing: Billing) -> None:
    billing.user("alice@example.com", 95_500_000)
    assert api.balance("Alice@example.com").get_json() == {
        "user": "alice@example.com",
        "balance": "95.5",
        "available": "95.5",
        "reserved": "0",
        "low": True,  # below the default threshold of 5,000 credits
    }
    billing.set(default_low_balance_threshold_ucr=50 * CR)
    assert api.balance("alice@example.com").get_json()["low"] is False
    response = api.balance("ghost@example.com")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "unknown_user"
    assert api.client.get("/api/v1/balance", headers=api.headers()).status_code == 400


def test_api_is_rate_limited_per_key_with_retry_after(db_config) -> None:
    from tests.conftest import make_test_app

    app = make_test_app(db_config, API_RATE_LIMIT="3/minute")
    billing = Billing(app)
    billing.user("alice@example.com", 100 * CR)
    client = app.test_client()
    one, two = billing.api_key("one"), billing.api_key("two")
    codes = [
        client.get(
            "/api/v1/balance?user=alice@example.com", headers={"Authorization": f"Bearer {one}"}
        ).status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    fresh = client.get(
        "/api/v1/balance?user=alice@example.com", headers={"Authorization": f"Bearer {two}"}
    )
    assert (fresh.headers["X-RateLimit-Limit"], fresh.headers["X-RateLimit-Remaining"]) == (
        "3",
        "2",
    )
    limited = client.get(
        "/api/v1/balance?user=alice@example.com", headers={"Authorization": f"Bearer {one}"}
    )
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    # Another key has its own allowance.
    other = client.get(
        "/api/v1/balance?user=alice@example.com", headers={"Authorization": f"Bearer {two}"}
    )
    assert other.status_code == 200
    assert other.headers["X-RateLimit-Remaining"] == "1"
    app.extensions["creditline.db"].dispose()


def test_api_needs_no_csrf_token(api: Api, billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    assert api.usage().status_code == 201  # no cookie, no CSRF token: bearer auth only


def test_create_api_key_cli_prints_a_working_key_once(
    app: Flask, runner, client, billing: Billing
) -> None:
    billing.user("alice@example.com", 100 * CR)
    result = runner.invoke(args=["create-api-key", "dify-prod"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("cl_")
    response = client.post(
        "/api/v1/usage", json=event(), headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 201
    assert runner.invoke(args=["create-api-key", ""]).exit_code == 1


def test_integral_numbers_are_token_counts_fractions_are_not(api: Api, billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    body = json.dumps(event()).replace('"input_tokens": 1000', '"input_tokens": 1000.0')
    response = api.client.post(
        "/api/v1/usage", data=body, content_type="application/json", headers=api.headers()
    )
    assert response.status_code == 201
    assert response.get_json()["credits_charged"] == "4.5"
    for raw in ("1000.5", "1e999999999", "-0.0e1"):
        body = json.dumps(event(event_id=raw)).replace(
            '"input_tokens": 1000', f'"input_tokens": {raw}'
        )
        response = api.client.post(
            "/api/v1/usage", data=body, content_type="application/json", headers=api.headers()
        )
        assert response.status_code == (201 if raw == "-0.0e1" else 400), raw


def _redis_url() -> str | None:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return None
    return "redis://127.0.0.1:6379/15"


def test_rate_limit_is_shared_between_servers_through_redis(db_config) -> None:
    """Two app instances (two servers) on one Redis share each key's allowance."""
    import uuid

    from tests.conftest import make_test_app

    url = _redis_url()
    if url is None:
        pytest.skip("no Redis at 127.0.0.1:6379")
    config = {
        "RATELIMIT_STORAGE_URI": url,
        "RATELIMIT_KEY_PREFIX": "test-" + uuid.uuid4().hex,
        "API_RATE_LIMIT": "3/minute",
    }
    server_a = make_test_app(db_config, **config)
    server_b = make_test_app(db_config, **config)
    billing = Billing(server_a)
    billing.user("alice@example.com", 100 * CR)
    headers = {"Authorization": f"Bearer {billing.api_key()}"}
    path = "/api/v1/balance?user=alice@example.com"
    codes = [
        server_a.test_client().get(path, headers=headers).status_code,
        server_b.test_client().get(path, headers=headers).status_code,
        server_a.test_client().get(path, headers=headers).status_code,
        server_b.test_client().get(path, headers=headers).status_code,
    ]
    assert codes == [200, 200, 200, 429]
    for app in (server_a, server_b):
        app.extensions["creditline.db"].dispose()


@pytest.mark.parametrize("user", ["", "\r", " ", "a\x01b", "x" * 255])
def test_balance_user_parameter_is_validated(api: Api, user: str) -> None:
    response = api.balance(user)
    assert response.status_code == 400
    assert "user" in response.get_json()["error"]["details"]["fields"]
