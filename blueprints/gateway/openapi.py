"""The gateway's part of the OpenAPI document: ``/v1`` (OpenAI-compatible).

Request and answer bodies are OpenAI's; they are described loosely here
(OpenAI publishes their full schemas) and the document pins what is
Creditline's own: the user key, the charge headers and the error codes.
"""

from __future__ import annotations

from typing import Any

GATEWAY_ERROR_CODES = [
    "invalid_request",
    "unauthorized",
    "insufficient_credits",
    "key_limit_reached",
    "user_disabled",
    "unknown_model",
    "model_disabled",
    "request_too_large",
    "limit_exceeded",
    "rate_limited",
    "concurrency_limited",
    "upstream_error",
    "upstream_timeout",
    "unavailable",
]

GATEWAY_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "type"],
            "properties": {
                "code": {
                    "description": (
                        "One of the enum's codes, or an upstream's own code when its 4xx "
                        "error is relayed."
                    ),
                    "anyOf": [{"enum": GATEWAY_ERROR_CODES}, {"type": "string"}],
                },
                "message": {"type": "string"},
                "type": {"type": "string", "description": "OpenAI's error type."},
                "param": {"type": ["string", "null"]},
                "details": {"type": "object"},
            },
        }
    },
}

RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GatewayError"}}},
    }
    if headers:
        response["headers"] = headers
    return response


CALL_ERRORS = {
    "400": _error("The body is not a valid request (the field is in `param`)."),
    "401": _error("Missing, unknown, revoked or expired user key."),
    "402": _error(
        "Available credits (balance minus reserved) do not cover the call's worst case; "
        "`details.required` and `details.available` say by how much.",
        {"x-should-retry": {"schema": {"const": "false"}}},
    ),
    "403": _error("`key_limit_reached` (the key's credit limit) or `user_disabled`."),
    "404": _error("`unknown_model` or `model_disabled`."),
    "413": _error("Body larger than GATEWAY_MAX_BODY_BYTES."),
    "422": _error("The call's worst case is above the per-call caps (`limit_exceeded`)."),
    "429": _error("`rate_limited` (per key) or `concurrency_limited` (per user).", RETRY_AFTER),
    "502": _error("The upstream failed or could not be reached (`upstream_error`)."),
    "504": _error("The upstream did not answer in time (`upstream_timeout`)."),
    "503": _error("The database or the rate-limit counters are briefly unavailable.", RETRY_AFTER),
}

CHARGE_HEADERS = {
    "x-creditline-credits-charged": {
        "description": "Credits charged for this call (exact decimal string).",
        "schema": {"type": "string"},
    },
    "x-creditline-balance": {
        "description": "The balance after the charge (exact decimal string).",
        "schema": {"type": "string"},
    },
}


def _call(operation_id: str, summary: str, streams: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if streams:
        content["text/event-stream"] = {
            "schema": {
                "type": "string",
                "description": "OpenAI's chunks, relayed as sent; ends with `data: [DONE]`.",
            }
        }
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "security": [{"userKey": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["model"],
                            "properties": {"model": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The upstream's answer (non-stream answers carry the charge).",
                    "headers": CHARGE_HEADERS,
                    "content": content,
                },
                **CALL_ERRORS,
            },
        }
    }


def gateway_paths() -> dict[str, Any]:
    return {
        "/v1/models": {
            "get": {
                "operationId": "listModels",
                "summary": "The models callable through the gateway (OpenAI's list shape)",
                "security": [{"userKey": []}],
                "responses": {
                    "200": {
                        "description": "`{object: list, data: [{id, object, created, owned_by}]}`",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": CALL_ERRORS["401"],
                    "429": CALL_ERRORS["429"],
                },
            }
        },
        "/v1/chat/completions": _call(
            "createChatCompletion", "A metered chat completion, streamed or not", streams=True
        ),
        "/v1/embeddings": _call("createEmbeddings", "Metered embeddings", streams=False),
    }


USER_KEY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A user's own key (clk_…), made at /settings/api-keys.",
}
