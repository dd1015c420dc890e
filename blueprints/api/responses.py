"""Domain outcomes -> the API's JSON bodies (spec §3).

Errors are built by ``blueprints.errors`` (one code -> status table, one
builder); this module shapes the usage results around them.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from blueprints.errors import domain_error_object, error_object
from core.enums import UsageStatus
from core.errors import RequestInvalid
from core.pricing import format_credits
from core.usage_reports import UsageResult


def json_response(body: dict[str, Any], status: int) -> Response:
    """A compact JSON response for the hot path, without ``jsonify``'s provider
    lookups (the bodies here are plain dicts of strings and bools)."""
    return Response(json.dumps(body, separators=(",", ":")), status, mimetype="application/json")


def charged(result: UsageResult) -> dict[str, Any]:
    return {
        "event_id": result.event_id,
        "status": UsageStatus.CHARGED.value,
        "duplicate": result.duplicate,
        "credits_charged": format_credits(result.cost_ucr),
        "balance": format_credits(result.balance_ucr or 0),
    }


def rejected(result: UsageResult) -> dict[str, Any]:
    """A batch result for an event the ledger refused (stored, or a conflict)."""
    assert result.error is not None
    return _rejected(result.event_id, domain_error_object(result.error))


def invalid(item: Any, error: RequestInvalid) -> dict[str, Any]:
    """A batch result for an item that is not a usage event; nothing is stored.

    Its ``details.fields`` is always present, even when empty.
    """
    event_id = item.get("event_id") if isinstance(item, dict) else None
    body = error_object(error.code, error.message, {"fields": error.fields})
    return _rejected(event_id if isinstance(event_id, str) else None, body)


def _rejected(event_id: str | None, error: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "status": UsageStatus.REJECTED.value, "error": error}
