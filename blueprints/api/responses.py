"""Domain outcomes -> the API's JSON bodies and HTTP statuses (spec §3)."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from core.errors import DomainError, UsageRejected
from core.pricing import format_credits
from core.usage_debits import UsageResult

STATUS_BY_CODE = {
    "invalid_request": 400,
    "unauthorized": 401,
    "insufficient_credits": 402,
    "conflict": 409,
    "unknown_model": 422,
    "model_disabled": 422,
    "limit_exceeded": 422,
    "unknown_user": 422,
    "user_disabled": 422,
}


def json_response(body: dict[str, Any], status: int) -> Response:
    """A compact JSON response for the hot path, without ``jsonify``'s provider
    lookups (the bodies here are plain dicts of strings and bools)."""
    return Response(json.dumps(body, separators=(",", ":")), status, mimetype="application/json")


def charged(result: UsageResult) -> dict[str, Any]:
    return {
        "event_id": result.event_id,
        "status": "charged",
        "duplicate": result.duplicate,
        "credits_charged": format_credits(result.cost_ucr),
        "balance": format_credits(result.balance_ucr or 0),
    }


def error_payload(error: DomainError, event_id: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = dict(error.details)
    if isinstance(error, UsageRejected):
        details["event_id"] = error.event_id
        details["duplicate"] = error.duplicate
    elif event_id is not None:
        details["event_id"] = event_id
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if details:
        body["details"] = {k: v for k, v in details.items() if v is not None}
    return body


def rejected(event_id: Any, error: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "status": "rejected", "error": error}
