"""Error responses: the spec's JSON error shape under /api/, HTML pages elsewhere.

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

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from blueprints.rate_limits import CountersUnavailable

# HTTP status -> the API's error code (spec §3).
API_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    402: "insufficient_credits",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "invalid_request",
    415: "invalid_request",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}
RETRY_UNAVAILABLE_SECONDS = 2


def api_error(status: int, message: str, code: str | None = None, **details: object) -> Response:
    body = {"error": {"code": code or API_CODES.get(status, "error"), "message": message}}
    if details:
        body["error"]["details"] = details
    response = jsonify(body)
    response.status_code = status
    return response


def is_api_path(path: str) -> bool:
    """The JSON API's URLs: JSON errors, bearer keys, no cookie session."""
    return path.startswith("/api/")


def _handle_http(exc: HTTPException) -> Response | tuple[str, int]:
    status = exc.code or 500
    if isinstance(exc, CSRFError):
        message = "The form expired or was sent without its security token. Please try again."
    else:
        message = exc.description or exc.name
    if is_api_path(request.path):
        response = api_error(status, message)
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
        response = api_error(503, message)
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


def init_app(app: Flask) -> None:
    for error in unavailable_errors(app):
        app.register_error_handler(error, _unavailable)
    # InternalServerError is an HTTPException too: Flask wraps unhandled errors
    # in it (after logging them), and under TESTING re-raises them instead so
    # the test suite sees the real traceback.
    app.register_error_handler(HTTPException, _handle_http)
