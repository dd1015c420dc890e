"""schemathesis drives the API over HTTP from the app's own OpenAPI document:
generated valid and invalid requests, checking that nothing answers 5xx and
that every response matches the document. Examples are bounded so the suite
stays quick."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from blueprints.api.openapi import openapi_document
from core.pricing import MICRO as CR
from tests.conftest import Billing, LiveServer

# A schema-valid event can still be refused for business reasons the document
# declares: 402 (not enough credits) and 422 (unknown user or model, caps).
# 400 stays unexpected: the document must describe exactly what is accepted.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "402", "409", "422", "429"]
            }
        }
    }
)
# The usage API's operations; the gateway's /v1 bodies are OpenAI's, exercised
# by tests/test_gateway.py with the openai SDK.
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG).include(
    path_regex="^/api/"
)


@pytest.fixture
def funded_server(live_server: LiveServer) -> tuple[str, dict[str, str]]:
    billing = Billing(live_server.app)
    billing.user("alice@example.com", 1_000 * CR)
    return live_server.url, {"Authorization": f"Bearer {billing.api_key('schemathesis')}"}


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi_document(case, funded_server) -> None:
    base_url, headers = funded_server
    case.call_and_validate(base_url=base_url, headers=headers)


def test_served_document_is_the_one_tested(client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == openapi_document()
    assert response.get_json()["openapi"] == "3.1.0"
