"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json.

Kept beside the routes and checked against them by schemathesis in the test
suite, so the document and the behaviour cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

from blueprints.api.validation import (
    MAX_BATCH,
    MAX_ID_LENGTH,
    MAX_MODEL_LENGTH,
    OCCURRED_AT_PATTERN,
    TEXT_PATTERN,
)
from blueprints.gateway.openapi import GATEWAY_ERROR, USER_KEY_SCHEME, gateway_paths
from core.accounts import MAX_EMAIL_LENGTH
from core.bounds import (
    MAX_CREDITS,
    MAX_EVENT_YEAR,
    MAX_TOKENS,
    MAX_TOKENS_PER_EVENT,
    MIN_EVENT_YEAR,
)

DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d{1,6})?$", "examples": ["4.5"]}

_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": TEXT_PATTERN}
_TOKENS = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_TOKENS,
    "description": (
        f"At most {MAX_TOKENS} (JSON's exact integer range; above it: 400). Input plus "
        "output tokens above the admin's per-event cap (default 10,000,000, at most "
        f"{MAX_TOKENS_PER_EVENT:,}) are refused with 422 limit_exceeded and stored as "
        "a rejected event."
    ),
}

USAGE_EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event_id", "user", "model", "input_tokens", "output_tokens"],
    "properties": {
        "event_id": {**_ID, "description": "Unique per integration key (Dify: the message id)."},
        "user": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_EMAIL_LENGTH,
            "pattern": TEXT_PATTERN,
            "description": "The user's email.",
        },
        "model": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_MODEL_LENGTH,
            "pattern": TEXT_PATTERN,
        },
        "input_tokens": _TOKENS,
        "output_tokens": _TOKENS,
        "conversation_id": {"anyOf": [_ID, {"type": "null"}]},
        "occurred_at": {
            "anyOf": [
                {"type": "string", "format": "date-time", "pattern": OCCURRED_AT_PATTERN},
                {"type": "null"},
            ],
            "description": (
                "RFC 3339 with a time zone, in the years "
                f"{MIN_EVENT_YEAR} to {MAX_EVENT_YEAR} as written; defaults to the time "
                "received."
            ),
        },
    },
    "examples": [
        {
            "event_id": "msg-7f3a",
            "user": "alice@example.com",
            "model": "gpt-4o-mini",
            "input_tokens": 1000,
            "output_tokens": 500,
            "conversation_id": "conv-1",
            "occurred_at": "2026-11-24T10:00:00Z",
        }
    ],
}

CHARGED = {
    "type": "object",
    "required": ["event_id", "status", "duplicate", "credits_charged", "balance"],
    "properties": {
        "event_id": {"type": "string"},
        "status": {"const": "charged"},
        "duplicate": {"type": "boolean"},
        "credits_charged": DECIMAL,
        "balance": DECIMAL,
    },
}

ERROR_BODY = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {
            "enum": [
                "invalid_request",
                "unauthorized",
                "insufficient_credits",
                "conflict",
                "unknown_model",
                "model_disabled",
                "limit_exceeded",
                "unknown_user",
                "user_disabled",
                "rate_limited",
                "not_found",
                "method_not_allowed",
                "unavailable",
            ]
        },
        "message": {"type": "string"},
        "details": {"type": "object"},
    },
}

ERROR = {"type": "object", "required": ["error"], "properties": {"error": ERROR_BODY}}

REJECTED = {
    "type": "object",
    "required": ["event_id", "status", "error"],
    "properties": {
        "event_id": {"type": ["string", "null"]},
        "status": {"const": "rejected"},
        "error": ERROR_BODY,
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


COMMON_ERRORS = {
    "400": _error("Invalid request: bad JSON, wrong types, unknown or missing fields."),
    "401": _error("Missing, unknown or revoked integration key."),
    "413": _error("Body larger than the size limit."),
    "429": {
        **_error("Rate limit for this integration key exceeded."),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    "503": {
        **_error("The database or the rate-limit counters are briefly unavailable; retry."),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
}


def openapi_document() -> dict[str, Any]:
    """The usage API's document, with the gateway's ``/v1`` beside it."""
    document = _usage_api_document()
    document["paths"].update(gateway_paths())
    document["components"]["securitySchemes"]["userKey"] = USER_KEY_SCHEME
    document["components"]["schemas"]["GatewayError"] = GATEWAY_ERROR
    return document


def _usage_api_document() -> dict[str, Any]:
    usage_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UsageEvent"}}},
    }
    batch_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["events"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            # Each item is validated on its own against UsageEvent;
                            # an invalid one gets its own invalid_request result
                            # while the others are processed.
                            "items": {
                                "description": "A UsageEvent (invalid ones rejected singly)."
                            },
                        }
                    },
                }
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Creditline API: usage reports and the metering gateway",
            "version": "1.0.0",
            "description": (
                "Report AI token usage to be priced and debited from a user's prepaid "
                "credits, exactly once per event id. Credit amounts are exact decimal strings."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"integrationKey": []}],
        "paths": {
            "/api/v1/usage": {
                "post": {
                    "operationId": "reportUsage",
                    "summary": "Report one usage event",
                    "requestBody": usage_body,
                    "responses": {
                        "201": _json("Charged", "Charged now."),
                        "200": _json("Charged", "Identical replay of an event already charged."),
                        "402": _error("Insufficient credits: stored as rejected, not charged."),
                        "409": _error("The event id was used before with a different payload."),
                        "422": _error(
                            "Unknown or disabled model or user, or over a per-event cap "
                            "(limit_exceeded: tokens, or credits; the credits cap defaults "
                            f"to 1,000,000 and is at most {MAX_CREDITS:,}): stored as rejected."
                        ),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/api/v1/usage/batch": {
                "post": {
                    "operationId": "reportUsageBatch",
                    "summary": f"Report up to {MAX_BATCH} usage events",
                    "description": (
                        "One result per event, in order; one bad event does not fail the others."
                    ),
                    "requestBody": batch_body,
                    "responses": {
                        "200": {
                            "description": "Per-event results.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["results"],
                                        "properties": {
                                            "results": {
                                                "type": "array",
                                                "items": {
                                                    "oneOf": [
                                                        {"$ref": "#/components/schemas/Charged"},
                                                        {"$ref": "#/components/schemas/Rejected"},
                                                    ]
                                                },
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        **COMMON_ERRORS,
                    },
                }
            },
            "/api/v1/balance": {
                "get": {
                    "operationId": "getBalance",
                    "summary": "A user's balance in credits",
                    "parameters": [
                        {
                            "name": "user",
                            "in": "query",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_EMAIL_LENGTH,
                                "pattern": TEXT_PATTERN,
                            },
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The balance, and whether it is below the threshold.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": [
                                            "user",
                                            "balance",
                                            "available",
                                            "reserved",
                                            "low",
                                        ],
                                        "properties": {
                                            "user": {"type": "string"},
                                            "balance": DECIMAL,
                                            "available": {
                                                **DECIMAL,
                                                "description": "Balance less reserved.",
                                            },
                                            "reserved": {
                                                **DECIMAL,
                                                "description": "Held by calls running now.",
                                            },
                                            "low": {
                                                "type": "boolean",
                                                "description": "Available is below the "
                                                "user's low-balance threshold.",
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "422": _error("No user with this email."),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1 document.",
                            "content": {"application/json": {}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "integrationKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An integration key created by an admin (cl_…).",
                }
            },
            "schemas": {
                "UsageEvent": USAGE_EVENT,
                "Charged": CHARGED,
                "Rejected": REJECTED,
                "Error": ERROR,
            },
        },
    }
