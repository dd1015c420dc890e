"""The JSON API for integrations (spec §3): usage reports and balances."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, jsonify, request

from blueprints.api import bp, responses
from blueprints.api.openapi import openapi_document
from blueprints.api.validation import (
    RequestInvalid,
    parse_batch,
    parse_json,
    parse_usage,
    parse_user_param,
)
from blueprints.db_session import price_book, read_session
from blueprints.errors import api_error
from blueprints.extensions import database, prices
from blueprints.rate_limits import rate_limits
from core import integration_keys, usage_debits
from core.balances import balance_view
from core.errors import DomainError
from core.pricing import format_credits

PUBLIC_ENDPOINTS = {"api.openapi"}


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@bp.before_request
def authenticate() -> Response | None:
    """Every API call but the document: a valid key, then within its rate limit."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    with database().raw_read() as cursor:
        key = integration_keys.authenticate(cursor, _bearer())
    if key is None:
        response = api_error(401, "A valid integration key is required (Authorization: Bearer …).")
        response.headers["WWW-Authenticate"] = 'Bearer realm="creditline"'
        return response
    g.integration_key = key
    api_limit = current_app.config["API_RATE_LIMIT"]
    g.rate_verdict = verdict = rate_limits().hit(api_limit, "api-key", str(key.id))
    if not verdict.allowed:
        response = api_error(429, f"Rate limit of {verdict.limit} requests exceeded; retry later.")
        response.headers["Retry-After"] = str(verdict.retry_after)
        return response
    if integration_keys.needs_touch(key):
        with database().write() as s:
            integration_keys.touch(s, key.id)
    return None


@bp.after_request
def _rate_limit_headers(response: Response) -> Response:
    verdict = g.get("rate_verdict")
    if verdict is not None:
        response.headers["X-RateLimit-Limit"] = str(verdict.limit)
        response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
    return response


def _body() -> Any:
    return parse_json(request.get_data(cache=False), request.mimetype)


@bp.errorhandler(RequestInvalid)
def _invalid(exc: RequestInvalid) -> Response:
    return api_error(400, exc.message, **({"fields": exc.details} if exc.details else {}))


@bp.post("/usage")
def report_usage() -> tuple[Response, int]:
    report = parse_usage(_body())
    try:
        result = usage_debits.debit_usage(database(), prices(), g.integration_key.id, report)
    except DomainError as exc:
        payload = responses.error_payload(exc, report.event_id)
        return jsonify({"error": payload}), responses.STATUS_BY_CODE.get(exc.code, 422)
    return responses.json_response(responses.charged(result), 200 if result.duplicate else 201)


@bp.post("/usage/batch")
def report_usage_batch() -> Response:
    items = parse_batch(_body())
    results: list[dict[str, Any] | None] = [None] * len(items)
    valid: list[tuple[int, usage_debits.UsageReport]] = []
    for index, item in enumerate(items):
        try:
            valid.append((index, parse_usage(item)))
        except RequestInvalid as exc:
            event_id = item.get("event_id") if isinstance(item, dict) else None
            error = {
                "code": "invalid_request",
                "message": exc.message,
                "details": {"fields": exc.details},
            }
            results[index] = responses.rejected(
                event_id if isinstance(event_id, str) else None, error
            )
    outcomes = usage_debits.debit_usage_batch(
        database(), prices(), g.integration_key.id, [r for _, r in valid]
    )
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if outcome.error is None:
            results[index] = responses.charged(outcome)
        else:
            results[index] = responses.rejected(
                outcome.event_id, responses.error_payload(outcome.error)
            )
    return jsonify({"results": results})


@bp.get("/balance")
def balance() -> Response:
    email = parse_user_param(request.args.get("user"))
    view = balance_view(read_session(), price_book().settings, email=email)
    if view is None:
        return api_error(422, f"No user with email {email!r}.", code="unknown_user")
    return jsonify(
        {"user": view.email, "balance": format_credits(view.balance_ucr), "low": view.low}
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
