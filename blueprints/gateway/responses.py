"""The gateway's error bodies: the API's error object plus OpenAI's ``type`` and
``param``, so OpenAI SDKs raise their own error classes (spec §6).

Built by ``blueprints.errors.error_response`` like every JSON error. A few
codes answer with another status here than on ``/api/v1``, as OpenAI's API
does: an unknown or disabled model is ``404``, a disabled user ``403``.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from blueprints.errors import ERROR_STATUS, error_response
from core.errors import DomainError, InsufficientCredits, Unauthenticated, UpstreamRefused

GATEWAY_STATUS = {"unknown_model": 404, "model_disabled": 404, "user_disabled": 403}

# HTTP status -> OpenAI's error ``type``.
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def status_of(code: str) -> int:
    return GATEWAY_STATUS.get(code) or ERROR_STATUS[code]


def gateway_error(
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    status: int | None = None,
    param: str | None = None,
    type_: str | None = None,
) -> Response:
    """``{"error": {"code", "message", "type", "param", "details"}}``."""
    status = status or status_of(code)
    return error_response(
        code,
        message,
        details,
        status=status,
        type=type_ or OPENAI_TYPES.get(status, "api_error"),
        param=param,
    )


def domain_error_response(error: DomainError) -> Response:
    """The response for a refused or failed call."""
    if isinstance(error, UpstreamRefused):
        if error.status < 500:
            return _relayed(error)
        return gateway_error("upstream_error", f"The upstream failed ({error.status}).", status=502)
    details = {k: v for k, v in error.details.items() if v is not None}
    param = details.pop("param", None)
    retry_after = details.pop("retry_after", None)
    response = gateway_error(error.code, error.message, details, param=param)
    if isinstance(error, InsufficientCredits):
        response.headers["x-should-retry"] = "false"
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    if isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = 'Bearer realm="creditline"'
    return response


def _relayed(error: UpstreamRefused) -> Response:
    """An upstream's 4xx before any body: its status and (scrubbed) error object.

    An upstream 401/403 says Creditline's own secret for it is wrong, which the
    client cannot fix: that is a 502 ``upstream_error`` for the client."""
    if error.status in (401, 403):
        return gateway_error(
            "upstream_error",
            "The upstream refused the gateway's credentials; an admin must check them.",
            status=502,
        )
    upstream = error.error
    kind, param = upstream.get("type"), upstream.get("param")
    response = gateway_error(
        str(upstream.get("code") or "upstream_error"),
        str(upstream.get("message") or f"The upstream answered {error.status}."),
        status=error.status,
        param=param if isinstance(param, str) else None,
        type_=kind if isinstance(kind, str) else None,
    )
    if error.retry_after:
        response.headers["Retry-After"] = error.retry_after
    return response
