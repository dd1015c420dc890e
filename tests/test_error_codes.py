"""One error hierarchy, one code -> status table, one builder (blueprints.errors).

The table must cover every DomainError subclass's code (so a new error cannot
be added without a status), and every code in it is either in the API's
OpenAPI document or listed, with the reason, as one the API never sends.
The bodies each former way of building an error produced are pinned here,
so the single builder answers exactly as they did.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
from flask.testing import FlaskClient

import blueprints
import core
from blueprints.api.openapi import openapi_document
from blueprints.errors import ERROR_STATUS, OFF_API_CODES, error_object, error_response
from core import errors
from core.errors import DomainError
from tests.conftest import Billing

CR = 1_000_000


def _every_domain_error() -> list[type[DomainError]]:
    """Every subclass in core/ and blueprints/, wherever it is defined."""
    for package in (core, blueprints):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    found, todo = [], [DomainError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _api_codes() -> list[str]:
    schemas = openapi_document()["components"]["schemas"]
    usage = schemas["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    gateway = schemas["GatewayError"]["properties"]["error"]["properties"]["code"]["anyOf"][0]
    return sorted({*usage, *gateway["enum"]})


def test_every_domain_error_has_a_status_and_a_raised_when_docstring() -> None:
    classes = _every_domain_error()
    assert len(classes) > 25  # the walk found the errors outside core.errors too
    names = {cls.__name__ for cls in classes}
    assert {"CountersUnavailable", "ExportTooLarge", "PaymentProviderError"} <= names
    for cls in classes:
        assert cls.code in ERROR_STATUS, f"{cls.__name__}.code {cls.code!r} has no HTTP status"
        assert (cls.__doc__ or "").startswith("Raised when "), cls.__name__


def test_every_code_is_published_or_documented_as_off_the_api() -> None:
    published = set(_api_codes())
    assert published <= set(ERROR_STATUS), "a published code without a status"
    assert set(OFF_API_CODES) <= set(ERROR_STATUS)
    assert not published & set(OFF_API_CODES)
    assert set(ERROR_STATUS) == published | set(OFF_API_CODES)
    assert all(why.strip() for why in OFF_API_CODES.values())


def test_amounts_and_api_requests_are_validation_errors_and_codes_mean_one_thing() -> None:
    assert issubclass(errors.AmountError, errors.ValidationError)
    assert issubclass(errors.AmountError, ValueError)  # still a ValueError for callers
    assert issubclass(errors.RequestInvalid, errors.ValidationError)
    assert errors.EmailTaken.code == "email_taken"
    assert errors.ModelExists.code == "model_exists"
    assert errors.Conflict.code == "conflict"
    assert ERROR_STATUS["email_taken"] == ERROR_STATUS["model_exists"] == 409
    owners = [cls for cls in _every_domain_error() if cls.__dict__.get("code") == "conflict"]
    assert owners == [errors.Conflict]


def test_builder_leaves_out_empty_details_and_takes_extra_keys(app) -> None:
    assert error_object("conflict", "m") == {"code": "conflict", "message": "m"}
    assert error_object("conflict", "m", {}) == {"code": "conflict", "message": "m"}
    gateway = error_object("unknown_model", "m", {"model": "x"}, type="invalid_request_error")
    assert list(gateway) == ["code", "message", "type", "details"]
    with app.test_request_context():
        response = error_response("unknown_model", "No such model.", status=404, param="model")
        assert response.status_code == 404
        assert response.get_json() == {
            "error": {"code": "unknown_model", "message": "No such model.", "param": "model"}
        }
        assert error_response("insufficient_credits", "m").status_code == 402


# --- the API's bodies, as each former builder produced them ------------------------


def _post(client: FlaskClient, url: str, key: str, body: Any) -> Any:
    return client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})


def _event(event_id: str, **fields: Any) -> dict[str, Any]:
    base = {"event_id": event_id, "user": "alice@example.com", "model": "gpt-4o-mini"}
    return base | {"input_tokens": 1000, "output_tokens": 500} | fields


@pytest.fixture
def key(billing: Billing) -> str:
    billing.user("alice@example.com", 100 * CR)
    return billing.api_key()


def test_single_event_errors(client: FlaskClient, key: str) -> None:
    assert _post(client, "/api/v1/usage", key, _event("e1")).status_code == 201
    conflict = _post(client, "/api/v1/usage", key, _event("e1", output_tokens=1))
    assert conflict.status_code == 409
    assert conflict.get_json() == {
        "error": {
            "code": "conflict",
            "message": "Event 'e1' was already reported with a different payload.",
            "details": {"event_id": "e1"},
        }
    }
    poor = _post(client, "/api/v1/usage", key, _event("e2", input_tokens=5_000_000))
    assert poor.status_code == 402
    error = poor.get_json()["error"]
    assert (error["code"], error["details"]) == (
        "insufficient_credits",
        {"cost": "7503", "event_id": "e2", "duplicate": False},
    )
    again = _post(client, "/api/v1/usage", key, _event("e2", input_tokens=5_000_000))
    assert again.status_code == 402
    assert again.get_json()["error"]["details"] == {"event_id": "e2", "duplicate": True}
    unknown = _post(client, "/api/v1/usage", key, _event("e3", model="nope"))
    assert unknown.status_code == 422
    assert unknown.get_json() == {
        "error": {
            "code": "unknown_model",
            "message": "Unknown model 'nope'.",
            "details": {"event_id": "e3", "duplicate": False},
        }
    }


def test_request_errors(client: FlaskClient, key: str) -> None:
    bad_json = client.post(
        "/api/v1/usage",
        data=b"{",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert bad_json.get_json() == {
        "error": {"code": "invalid_request", "message": "The body is not valid JSON."}
    }
    fields = _post(client, "/api/v1/usage", key, _event("e1", input_tokens=-1))
    assert fields.status_code == 400
    assert fields.get_json() == {
        "error": {
            "code": "invalid_request",
            "message": "The usage event is invalid.",
            "details": {"fields": {"input_tokens": "Must not be negative."}},
        }
    }
    balance = client.get(
        "/api/v1/balance?user=bob@example.com", headers={"Authorization": f"Bearer {key}"}
    )
    assert balance.status_code == 422
    assert balance.get_json() == {
        "error": {"code": "unknown_user", "message": "No user with email 'bob@example.com'."}
    }


def test_batch_results_embed_the_same_error_objects(client: FlaskClient, key: str) -> None:
    _post(client, "/api/v1/usage", key, _event("e1"))
    events = [_event("e1", output_tokens=1), "not an object", _event("e2", model="nope")]
    response = _post(client, "/api/v1/usage/batch", key, {"events": events})
    assert response.status_code == 200
    assert response.get_json()["results"] == [
        {
            "event_id": "e1",
            "status": "rejected",
            "error": {
                "code": "conflict",
                "message": "Event 'e1' was already reported with a different payload.",
                "details": {"event_id": "e1"},
            },
        },
        {
            "event_id": None,
            "status": "rejected",
            "error": {
                "code": "invalid_request",
                "message": "A usage event must be a JSON object.",
                "details": {"fields": {}},
            },
        },
        {
            "event_id": "e2",
            "status": "rejected",
            "error": {
                "code": "unknown_model",
                "message": "Unknown model 'nope'.",
                "details": {"event_id": "e2", "duplicate": False},
            },
        },
    ]


def test_http_errors_keep_their_codes_and_headers(client: FlaskClient, key: str) -> None:
    missing = client.get("/api/v1/balance?user=a@example.com")
    assert missing.status_code == 401
    assert missing.get_json()["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="creditline"'
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/nothing", headers=auth).get_json()["error"]["code"] == "not_found"
    wrong = client.delete("/api/v1/usage", headers=auth)
    assert (wrong.status_code, wrong.get_json()["error"]["code"]) == (405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]
    huge = client.post(
        "/api/v1/usage", data=b"{" * 3_000_000, headers=auth, content_type="application/json"
    )
    assert (huge.status_code, huge.get_json()["error"]["code"]) == (413, "invalid_request")
