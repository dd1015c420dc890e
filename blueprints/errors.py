"""Error responses: the spec's JSON error shape under /api/, HTML pages elsewhere."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

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
}


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


def init_app(app: Flask) -> None:
    # InternalServerError is an HTTPException too: Flask wraps unhandled errors
    # in it (after logging them), and under TESTING re-raises them instead so
    # the test suite sees the real traceback.
    app.register_error_handler(HTTPException, _handle_http)
