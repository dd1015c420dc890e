"""Admin: models with prices, enable/disable, history and audit; form errors."""

from __future__ import annotations

import re
import threading

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core import audit, catalog
from core.errors import ModelExists
from core.models import AiModel, AuditEntry, ModelPriceChange
from tests.conftest import USING_PG, Billing, post_form, wait_until_blocked


@pytest.fixture
def admin(admin: Billing) -> Billing:
    """The signed-in admin of conftest, with a funded customer."""
    admin.user("alice@example.com", 100_000_000)
    return admin


def test_models_list_shows_prices_and_sample_cost(client: FlaskClient, admin: Billing) -> None:
    page = client.get("/admin/models").get_data(as_text=True)
    assert "<code>gpt-4o-mini</code>" in page
    assert '<td class="num">0.15</td><td class="num">0.6</td>' in page
    assert '<td class="num">4.5</td>' in page  # 1,000 in + 500 out at 10,000/USD


def test_create_and_edit_model_with_history(client: FlaskClient, admin: Billing) -> None:
    response = post_form(
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
    response = post_form(
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
    assert "Yes → No" in page


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
    response = post_form(client, "/admin/models", **data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with admin.db.read_session() as s:
        assert s.scalars(select(AiModel).where(AiModel.name.in_(["m1", "bad name!"]))).all() == []


def test_adding_a_model_under_an_existing_id_changes_nothing(
    client: FlaskClient, admin: Billing
) -> None:
    def state():
        with admin.db.read_session() as s:
            model = s.scalars(select(AiModel).where(AiModel.name == "gpt-4o-mini")).one()
            return (
                (model.display_name, model.input_price_uusd_per_m, model.output_price_uusd_per_m),
                model.enabled,
                s.scalars(select(ModelPriceChange.id)).all(),
                s.scalars(select(AuditEntry.id)).all(),
            )

    before = state()
    response = post_form(
        client,
        "/admin/models",
        name="gpt-4o-mini",
        display_name="Cheap now",
        input_usd="0",
        output_usd="0",
        reason="oops",
    )  # "enabled" unticked: would also have disabled it
    assert response.status_code == 400
    assert re.search(
        r'id="name-error">A model named &#39;gpt-4o-mini&#39; already exists; change its prices'
        r" on its own page.</small>",
        response.get_data(as_text=True),
    )
    assert state() == before
    assert admin.debit("still-priced", "alice@example.com").cost_ucr == 4_500_000


def test_two_admins_adding_the_same_model_at_once(admin: Billing) -> None:
    """A has added "twin" but not committed when B adds it too. B waits (SQLite:
    for the write lock; PostgreSQL: on the UNIQUE index, then loses with a
    unique violation) and is told the model exists, never a 500."""
    answer: dict[str, object] = {}

    def add(session, reason: str) -> None:
        catalog.set_model_price(
            session,
            audit.CLI,
            "twin",
            input_uusd_per_m=1,
            output_uusd_per_m=1,
            reason=reason,
            create_only=True,
        )

    def admin_b() -> None:
        try:
            with admin.db.write() as s:
                add(s, "b")
        except ModelExists as exc:
            answer["b"] = exc

    b = threading.Thread(target=admin_b)
    with admin.db.write() as session_a:
        add(session_a, "a")
        b.start()
        if USING_PG:  # hold A open until B is really blocked on A's row
            wait_until_blocked(admin.db.engine)
    b.join(timeout=30)
    assert isinstance(answer.get("b"), ModelExists)
    with admin.db.read_session() as s:
        reasons = s.scalars(
            select(ModelPriceChange.reason).join(AiModel).where(AiModel.name == "twin")
        ).all()
    assert reasons == ["a"]


def test_cli_set_model_price_still_creates_or_updates(admin: Billing) -> None:
    runner = admin.app.test_cli_runner()
    result = runner.invoke(args=["set-model-price", "gpt-4o-mini", "--input", "1", "--output", "2"])
    assert result.exit_code == 0, result.output
    with admin.db.read_session() as s:
        model = s.scalars(select(AiModel).where(AiModel.name == "gpt-4o-mini")).one()
    assert (model.input_price_uusd_per_m, model.output_price_uusd_per_m) == (1_000_000, 2_000_000)


def test_unknown_model_is_404(client: FlaskClient, admin: Billing) -> None:
    assert client.get("/admin/models/99999").status_code == 404
