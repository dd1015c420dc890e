"""Error responses: the spec's JSON error shape under /api/, HTML pages elsewhere.

One table, one builder. ``ERROR_STATUS`` maps every error code to its HTTP
status; a domain error's ``code`` (core.errors) picks its row, and a test
fails if a DomainError subclass has a code the table lacks. ``error_object``
builds the ``{"code", "message", "details"}`` object (the batch embeds it in
each rejected result); ``error_response`` wraps it as ``{"error": …}`` with
the table's status. Every JSON error is built by these two: the HTTP error
handlers, the API's DomainError handler (so API views are parse -> call ->
respond, with no try/except), the batch, the webhook. The gateway's
OpenAI-shaped errors (``type``, ``param``) pass them as extra keys.

A request that fails because the database is unreachable or unable to serve
(connection refused or lost, pool exhausted, SQLite unable to open or lock
its file), or because the rate-limit counters are, answers ``503`` with
``Retry-After``: on the API
``{"error": {"code": "unavailable", …}}``, elsewhere a short page that does
not touch the database. A 503 means the request's transaction did not
commit, except when the connection is lost during the COMMIT itself, where
nobody can tell; a retried usage report is then answered as the duplicate of
the charged event, so retrying a 503 is always safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from blueprints.rate_limits import CountersUnavailable
from core.errors import DomainError, Unavailable, UsageRejected

# Error code -> HTTP status (spec §3): the one table. A code means one thing;
# codes that share a status are separate rows.
ERROR_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "unauthorized": 401,
    "insufficient_credits": 402,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,  # an event id reused with another payload
    "email_taken": 409,
    "model_exists": 409,
    "posting_conflict": 409,
    "unknown_model": 422,
    "model_disabled": 422,
    "limit_exceeded": 422,
    "unknown_user": 422,
    "user_disabled": 422,
    "rejected": 422,  # a usage event stored as rejected for a reason without its own code
    "key_limit_reached": 403,  # the gateway: a user key's credit limit
    "request_too_large": 413,
    "rate_limited": 429,
    "concurrency_limited": 429,
    "error": 500,  # an HTTP status that has no code of its own
    "upstream_error": 502,
    "upstream_timeout": 504,
    "payment_provider_error": 502,
    "payments_not_configured": 503,
    "busy": 503,
    "unavailable": 503,
    "link_invalid": 400,
    "registration_closed": 403,
    "delivery_failed": 502,
}

# The codes of ERROR_STATUS that the JSON API never answers with, and why; every
# other code is in the API's OpenAPI document (a test checks both).
OFF_API_CODES: dict[str, str] = {
    "forbidden": "pages an account may not see; an integration key reaches only its own API",
    "email_taken": "sign-up, create-user",
    "model_exists": "the admin's Add a model form",
    "posting_conflict": "Stripe webhooks, answered 503 so Stripe sends the event again",
    "rejected": "only a stored rejection whose reason code this version does not know",
    "error": "an unexpected failure (500): a bug, not part of the contract",
    "payment_provider_error": "top-up pages",
    "payments_not_configured": "top-up pages",
    "busy": "sign-in and password pages",
    "link_invalid": "invitation and password-reset pages",
    "registration_closed": "the sign-up page",
    "delivery_failed": "the outbox worker's record of a failed email or webhook",
}

# The codes that answer a bare HTTP status (werkzeug's 404, 405, 429, ...).
_HTTP_CODES = (
    "invalid_request",
    "unauthorized",
    "insufficient_credits",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "rate_limited",
    "unavailable",
)
_CODE_BY_STATUS = {ERROR_STATUS[code]: code for code in _HTTP_CODES}
# Bodies too large, of the wrong type or unreadable: the client's request is at fault.
_CODE_BY_STATUS.update(dict.fromkeys((413, 415, 422), "invalid_request"))

RETRY_UNAVAILABLE_SECONDS = 2


def code_for_status(status: int) -> str:
    """The code a bare HTTP error answers with: its status's code, else ``error``."""
    return _CODE_BY_STATUS.get(status, "error")


def error_object(
    code: str, message: str, details: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """``{"code", "message", **extra, "details"}``; ``details`` only when not empty.

    ``extra`` holds keys beside code and message, such as the OpenAI ``type``
    and ``param`` of the gateway's errors (spec §6).
    """
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    if details:
        body["details"] = dict(details)
    return body


def domain_error_object(error: DomainError) -> dict[str, Any]:
    """The error object for a domain error; a rejected usage event adds its
    ``event_id`` and ``duplicate`` to the details. ``None`` details are left out."""
    details: dict[str, Any] = dict(error.details)
    if isinstance(error, UsageRejected):
        details["event_id"] = error.event_id
        details["duplicate"] = error.duplicate
    details = {k: v for k, v in details.items() if v is not None}
    return error_object(error.code, error.message, details)


def error_response(
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    *,
    status: int | None = None,
    **extra: Any,
) -> Response:
    """``{"error": error_object(...)}`` with ``status``, by default the code's row
    of ``ERROR_STATUS``."""
    return _respond(error_object(code, message, details, **extra), status or ERROR_STATUS[code])


def _respond(error: dict[str, Any], status: int) -> Response:
    response = jsonify({"error": error})
    response.status_code = status
    return response


def is_api_path(path: str) -> bool:
    """The JSON APIs' URLs (``/api/`` and the gateway's ``/v1/``): JSON errors,
    bearer keys, no cookie session."""
    return path.startswith(("/api/", "/v1/"))


def _handle_http(exc: HTTPException) -> Response | tuple[str, int]:
    status = exc.code or 500
    if isinstance(exc, CSRFError):
        message = "The form expired or was sent without its security token. Please try again."
    else:
        message = exc.description or exc.name
    if is_api_path(request.path):
        response = error_response(code_for_status(status), message, status=status)
    else:
        html = render_template("errors/error.html", status=status, title=exc.name, message=message)
        response = Response(html, status=status, mimetype="text/html")
    # Keep headers such as Retry-After (429) and Allow (405).
    for key, value in exc.get_headers():
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


def _unavailable(exc: Exception) -> Response:
    current_app.logger.error("unavailable: %s", exc, exc_info=exc)
    message = "The service is briefly unavailable. Please try again in a few seconds."
    if is_api_path(request.path):
        response = error_response("unavailable", message)
    else:
        # Rendered without the context processors: they would ask the database
        # for the signed-in user and the balance.
        page = current_app.jinja_env.get_template("errors/unavailable.html")
        response = Response(page.render(message=message), status=503, mimetype="text/html")
    response.headers["Retry-After"] = str(RETRY_UNAVAILABLE_SECONDS)
    return response


def unavailable_errors(app: Flask) -> tuple[type[Exception], ...]:
    """What a database that cannot serve raises, through SQLAlchemy or the raw
    cursors, and what the rate limits raise when their counters cannot."""
    dbapi = app.extensions["creditline.db"].engine.dialect.loaded_dbapi
    return (
        CountersUnavailable,
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,  # no pooled connection free in time
        dbapi.OperationalError,
        dbapi.InterfaceError,
    )


def _domain_error(error: DomainError) -> Response:
    return _respond(domain_error_object(error), ERROR_STATUS[error.code])


def init_api(bp: Blueprint) -> None:
    """On the JSON API, a DomainError a view lets through is the answer.

    A blueprint's handlers are looked up before the app's, so ``Unavailable``
    (rate-limit counters down) keeps the app's 503 with ``Retry-After``.
    """
    bp.register_error_handler(Unavailable, _unavailable)
    bp.register_error_handler(DomainError, _domain_error)


def init_app(app: Flask) -> None:
    for error in unavailable_errors(app):
        app.register_error_handler(error, _unavailable)
    # InternalServerError is an HTTPException too: Flask wraps unhandled errors
    # in it (after logging them), and under TESTING re-raises them instead so
    # the test suite sees the real traceback.
    app.register_error_handler(HTTPException, _handle_http)
