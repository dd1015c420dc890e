"""Validation of API request bodies into domain objects.

Strict on purpose: unknown fields, wrong types (``true`` or ``"10"`` where an
integer belongs), floats, out-of-range numbers, over-long ids and bad
timestamps are all refused with field-level details, so a misconfigured
integration finds out on its first request instead of being billed wrongly.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.accounts import MAX_EMAIL_LENGTH
from core.bounds import MAX_EVENT_YEAR, MAX_TOKENS, MIN_EVENT_YEAR
from core.errors import RequestInvalid as RequestInvalid  # raised by every parser here
from core.usage_reports import UsageReport

MAX_ID_LENGTH = 200
MAX_MODEL_LENGTH = 100
# MAX_TOKENS is JSON's exact integer range (core.bounds); a count within it but
# above the admin's per-event cap is the ledger's business: 422, and stored.
MAX_BATCH = 1000
# The OpenAPI document publishes this pattern for occurred_at: the year as
# written, MIN_EVENT_YEAR .. MAX_EVENT_YEAR (2000-2099).
OCCURRED_AT_PATTERN = r"^20[0-9]{2}-"

# Identifiers and names: at least one visible character, no control characters.
# The OpenAPI document publishes this same pattern.
TEXT_PATTERN = r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$"
_TEXT = re.compile(TEXT_PATTERN)

USAGE_FIELDS = {
    "event_id",
    "user",
    "model",
    "input_tokens",
    "output_tokens",
    "conversation_id",
    "occurred_at",
}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Decimal, never float: 1.0 is an integer in JSON Schema and is accepted as a
# token count; 1.5 is refused without rounding. One decoder for the process
# (json.loads with options would build a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=Decimal)


def parse_json(body: bytes, mimetype: str) -> Any:
    if mimetype != "application/json":
        raise RequestInvalid("Send the body as JSON with Content-Type: application/json.")
    try:
        # As json.loads(body) does: bytes in UTF-8, -16 or -32, BOM refused.
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and integers too long to parse.
        raise RequestInvalid("The body is not valid JSON.") from None


def _text(
    data: dict[str, Any], field: str, limit: int, errors: dict[str, str], *, required: bool
) -> str | None:
    value = data.get(field)
    if value is None:
        if required:
            errors[field] = "This field is required."
        return None
    if not isinstance(value, str):
        errors[field] = "Must be a string."
        return None
    if len(value) > limit:
        errors[field] = f"Must be at most {limit} characters."
        return None
    if not _TEXT.match(value):
        errors[field] = "Must contain a visible character and no control characters."
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        errors[field] = "Must be valid Unicode."
        return None
    return value


def _tokens(data: dict[str, Any], field: str, errors: dict[str, str]) -> int | None:
    value = data.get(field)
    if value is None:
        errors[field] = "This field is required."
        return None
    if isinstance(value, Decimal):
        if value.copy_abs() > MAX_TOKENS:  # compare first: 1e999999999 must never be built
            errors[field] = f"Must be at most {MAX_TOKENS}."
            return None
        if value == value.to_integral_value():
            value = int(value)
    # bool is an int subclass in Python; true is not a token count.
    if type(value) is not int:
        errors[field] = "Must be an integer."
        return None
    if value < 0:
        errors[field] = "Must not be negative."
        return None
    if value > MAX_TOKENS:
        errors[field] = f"Must be at most {MAX_TOKENS}."
        return None
    return value


def _timestamp(data: dict[str, Any], errors: dict[str, str]) -> datetime | None:
    value = data.get("occurred_at")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        errors["occurred_at"] = "Must be an RFC 3339 timestamp string."
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        errors["occurred_at"] = "Must be an RFC 3339 timestamp, e.g. 2026-11-24T10:00:00Z."
        return None
    if parsed.tzinfo is None:
        errors["occurred_at"] = "Must include a time zone (Z or an offset)."
        return None
    # Checked on the year as written, before converting: 0001-01-01T00:00+14:00
    # has no UTC equivalent in Python's calendar.
    if not MIN_EVENT_YEAR <= parsed.year <= MAX_EVENT_YEAR:
        errors["occurred_at"] = f"Must be in the years {MIN_EVENT_YEAR} to {MAX_EVENT_YEAR}."
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None)


def parse_usage(data: Any) -> UsageReport:
    """One usage event object -> UsageReport, or RequestInvalid with details."""
    if not isinstance(data, dict):
        raise RequestInvalid("A usage event must be a JSON object.")
    errors: dict[str, str] = {}
    for unknown in sorted(set(data) - USAGE_FIELDS):
        errors[str(unknown)[:100]] = "Unknown field."
    event_id = _text(data, "event_id", MAX_ID_LENGTH, errors, required=True)
    user = _text(data, "user", MAX_EMAIL_LENGTH, errors, required=True)
    model = _text(data, "model", MAX_MODEL_LENGTH, errors, required=True)
    input_tokens = _tokens(data, "input_tokens", errors)
    output_tokens = _tokens(data, "output_tokens", errors)
    conversation_id = _text(data, "conversation_id", MAX_ID_LENGTH, errors, required=False)
    occurred_at = _timestamp(data, errors)
    if errors:
        raise RequestInvalid("The usage event is invalid.", errors)
    return UsageReport(
        event_id=event_id,  # type: ignore[arg-type]
        user=user,  # type: ignore[arg-type]
        model=model,  # type: ignore[arg-type]
        input_tokens=input_tokens,  # type: ignore[arg-type]
        output_tokens=output_tokens,  # type: ignore[arg-type]
        conversation_id=conversation_id,
        occurred_at=occurred_at,
    )


def parse_user_param(value: str | None) -> str:
    """The ``?user=`` of GET /balance: an email-sized visible string."""
    errors: dict[str, str] = {}
    user = _text({"user": value}, "user", MAX_EMAIL_LENGTH, errors, required=True)
    if user is None:
        raise RequestInvalid("Give the user's email as ?user=…", errors)
    return user


def parse_batch(data: Any) -> list[Any]:
    """The batch envelope: ``{"events": [...]}`` with 1..MAX_BATCH items."""
    if not isinstance(data, dict):
        raise RequestInvalid("The body must be a JSON object with an 'events' list.")
    extra = sorted(set(data) - {"events"})
    if extra:
        raise RequestInvalid(
            "Unknown fields in the batch.", {str(k)[:100]: "Unknown field." for k in extra}
        )
    events = data.get("events")
    if not isinstance(events, list):
        raise RequestInvalid("'events' must be a list.", {"events": "Must be a list."})
    if not events:
        raise RequestInvalid("'events' must not be empty.", {"events": "Must not be empty."})
    if len(events) > MAX_BATCH:
        raise RequestInvalid(
            f"At most {MAX_BATCH} events per batch.",
            {"events": f"Must have at most {MAX_BATCH} items."},
        )
    return events
