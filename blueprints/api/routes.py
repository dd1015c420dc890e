"""The JSON API for integrations (spec §3): usage reports and balances."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Response, current_app, g, jsonify, request

from blueprints import errors
from blueprints.api import bp, responses
from blueprints.api.openapi import openapi_document
from blueprints.api.validation import parse_batch, parse_json, parse_usage, parse_user_param
from blueprints.db_session import price_book, read_session
from blueprints.errors import error_response
from blueprints.extensions import database, prices, recent_keys, user_wallets
from blueprints.rate_limits import rate_limits
from core import integration_keys, usage_debits
from core.balances import balance_view
from core.clock import utcnow
from core.errors import KeyRevoked, RequestInvalid, UnknownUser
from core.pricing import format_credits

PUBLIC_ENDPOINTS = {"api.openapi"}
RECHECKED_ENDPOINTS = {"api.report_usage", "api.report_usage_batch"}

# A DomainError (RequestInvalid, Conflict, a rejected event, ...) that a view
# lets through is answered with its code's status: views parse, call, respond.
errors.init_api(bp)


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@bp.before_request
def authenticate() -> Response | None:
    """Every API call but the document: a valid key, then within its rate limit."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    presented = _bearer()
    # The usage endpoints check the key again in their write transaction, so
    # they may trust a key this process has seen (core.recent_keys).
    key = recent_keys().get(presented) if request.endpoint in RECHECKED_ENDPOINTS else None
    if key is None:
        with database().raw_read() as cursor:
            key = integration_keys.authenticate(cursor, presented)
        if key is None:
            return _unauthorized("A valid integration key is required (Authorization: Bearer …).")
        recent_keys().remember(presented, key.id, key)
    g.integration_key = key
    api_limit = current_app.config["API_RATE_LIMIT"]
    g.rate_verdict = verdict = rate_limits().hit(api_limit, "api-key", str(key.id))
    if not verdict.allowed:
        response = error_response(
            "rate_limited", f"Rate limit of {verdict.limit} requests exceeded; retry later."
        )
        response.headers["Retry-After"] = str(verdict.retry_after)
        return response
    if integration_keys.needs_touch(key.last_used_at):
        with database().write() as s:
            integration_keys.touch(s, key.id)
        recent_keys().remember(presented, key.id, replace(key, last_used_at=utcnow()))
    return None


def _unauthorized(message: str) -> Response:
    response = error_response("unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="creditline"'
    return response


@bp.errorhandler(KeyRevoked)
def _key_revoked(error: KeyRevoked) -> Response:
    recent_keys().forget(g.integration_key.id)
    return _unauthorized(error.message)


@bp.after_request
def _rate_limit_headers(response: Response) -> Response:
    verdict = g.get("rate_verdict")
    if verdict is not None:
        response.headers["X-RateLimit-Limit"] = str(verdict.limit)
        response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
    return response


def _body() -> Any:
    return parse_json(request.get_data(cache=False), request.mimetype)


@bp.post("/usage")
def report_usage() -> Response:
    report = parse_usage(_body())
    result = usage_debits.debit_usage(
        database(), prices(), g.integration_key.id, report, user_wallets()
    )
    return responses.json_response(responses.charged(result), 200 if result.duplicate else 201)


@bp.post("/usage/batch")
def report_usage_batch() -> Response:
    items = parse_batch(_body())
    results: list[dict[str, Any] | None] = [None] * len(items)
    valid: list[tuple[int, usage_debits.UsageReport]] = []
    for index, item in enumerate(items):
        try:  # one bad event does not fail the others
            valid.append((index, parse_usage(item)))
        except RequestInvalid as exc:
            results[index] = responses.invalid(item, exc)
    outcomes = usage_debits.debit_usage_batch(
        database(), prices(), g.integration_key.id, [r for _, r in valid]
    )
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if outcome.error is None:
            results[index] = responses.charged(outcome)
        else:
            results[index] = responses.rejected(outcome)
    return jsonify({"results": results})


@bp.get("/balance")
def balance() -> Response:
    email = parse_user_param(request.args.get("user"))
    view = balance_view(read_session(), price_book().settings, email=email)
    if view is None:
        raise UnknownUser(f"No user with email {email!r}.")
    return jsonify(
        {
            "user": view.email,
            "balance": format_credits(view.balance_ucr),
            "available": format_credits(view.available_ucr),
            "reserved": format_credits(view.reserved_ucr),
            "low": view.low,
        }
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
