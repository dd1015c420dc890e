"""A client for the JSON usage API, as an integration would call it, and a
valid usage event (spec §3) to vary: shared by the API test modules."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


class Api:
    def __init__(self, client: FlaskClient, key: str) -> None:
        self.client = client
        self.key = key

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def usage(self, body: Any = None, key: str | None = None, **fields: Any):
        payload = body if body is not None else event(**fields)
        return self.client.post("/api/v1/usage", json=payload, headers=self.headers(key))

    def batch(self, events: list[Any]):
        return self.client.post(
            "/api/v1/usage/batch", json={"events": events}, headers=self.headers()
        )

    def balance(self, user: str):
        return self.client.get(
            "/api/v1/balance", query_string={"user": user}, headers=self.headers()
        )


def event(**overrides: Any) -> dict[str, Any]:
    base = {
        "event_id": "msg-7f3a",
        "user": "alice@example.com",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 500,
        "conversation_id": "conv-1",
        "occurred_at": "2026-11-24T10:00:00Z",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}
