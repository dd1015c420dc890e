"""Admin: models with prices, enable/disable, history and audit; form errors."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core.models import AiModel, AuditEntry, ModelPriceChange
from tests.conftest import AuthActions, Billing, csrf_token
from tests.test_admin_keys import _admin


@pytest.fixture
def admin(client: FlaskClient, auth: AuthActions, billing: Billing) -> Billing:
    _admin(auth, billing)
    return billing


def _post(client: FlaskClient, url: str, **data: str):
    return client.post(url, data={**data, "csrf_token": csrf_token(client, "/admin/models")})


def test_models_list_shows_prices_and_sample_cost(client: FlaskClient, admin: Billing) -> None:
    page = client.get("/admin/models").get_data(as_text=True)
    assert "<code>gpt-4o-mini</code>" in page
    assert '<td class="num">0.15</td><td class="num">0.6</td>' in page
    assert '<td class="num">4.5</td>' in page  # 1,000 in + 500 out at 10,000/USD


def test_create_and_edit_model_with_history(client: FlaskClient, admin: Billing) -> None:
    response = _post(
        client,
        "/admin/models",
        name="claude-sonnet-4",
        display_name="Claude Sonnet 4",
        input_usd="3",
        output_usd="15",
        enabled="y",
        reason="new contract",
    )
    assert response.status_code == 302
    with admin.db.read_session() as s:
        model = s.scalars(select(AiModel).where(AiModel.name == "claude-sonnet-4")).one()
    response = _post(
        client,
        f"/admin/models/{model.id}",
        name="ignored-rename",
        display_name="Claude Sonnet 4",
        input_usd="2.5",
        output_usd="12.5",
        reason="price cut",
    )  # "enabled" unticked: disables
    assert response.status_code == 302
    with admin.db.read_session() as s:
        model = s.get(AiModel, model.id)
        history = s.scalars(
            select(ModelPriceChange).where(ModelPriceChange.model_id == model.id)
        ).all()
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.object_id == "claude-sonnet-4")
        ).all()
    assert (
        model.name,
        model.input_price_uusd_per_m,
        model.output_price_uusd_per_m,
        model.enabled,
    ) == (
        "claude-sonnet-4",
        2_500_000,
        12_500_000,
        False,
    )
    assert [(h.new_input_uusd_per_m, h.reason, h.actor_label) for h in history] == [
        (3_000_000, "new contract", "boss@example.com"),
        (2_500_000, "price cut", "boss@example.com"),
    ]
    assert actions == ["model.create", "model.update"]
    page = client.get(f"/admin/models/{model.id}").get_data(as_text=True)
    assert "3 → 2.5" in page
    assert "True → False" in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input_usd": "-1"}, "cannot be negative"),
        ({"input_usd": "abc"}, "must be a number"),
        ({"output_usd": "0.0000001"}, "more than 6 decimal places"),
        ({"output_usd": "NaN"}, "finite"),
        ({"reason": ""}, "This field is required"),
        ({"name": "bad name!"}, "Model names are"),
    ],
)
def test_bad_model_forms_rerender_with_errors(
    client: FlaskClient, admin: Billing, fields, message
) -> None:
    data = {
        "name": "m1",
        "input_usd": "1",
        "output_usd": "2",
        "reason": "r",
        "enabled": "y",
    } | fields
    response = _post(client, "/admin/models", **data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with admin.db.read_session() as s:
        assert s.scalars(select(AiModel).where(AiModel.name.in_(["m1", "bad name!"]))).all() == []


def test_unknown_model_is_404(client: FlaskClient, admin: Billing) -> None:
    assert client.get("/admin/models/99999").status_code == 404
