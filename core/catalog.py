"""Admin changes to what usage costs: the exchange rate and model prices.

Each change is one transaction: the new value, its history row (who, when,
old, new, reason), an audit row, and a config version bump.

The read side at the end (``rate_history``, ``models_by_name``,
``price_history``, ...) is what the admin pages show of the same tables, so
views never build these queries themselves. Charging reads the price book
(``core.pricebook``), not these.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit, settings
from core.bounds import MAX_PRICE_UUSD_PER_M, MAX_RATE
from core.errors import ModelExists, ValidationError
from core.models import AiModel, ModelPriceChange, RateChange
from core.pricing import format_usd_per_m
from core.versions import bump_config_version

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}$")


def current_rate(session: Session) -> RateChange:
    return session.scalars(select(RateChange).order_by(RateChange.id.desc()).limit(1)).one()


def set_rate(session: Session, actor: audit.Actor, credits_per_usd: int, reason: str) -> RateChange:
    """Make ``credits_per_usd`` the current rate from the next event on."""
    reason = audit.clean_reason(reason)
    if type(credits_per_usd) is not int or not 1 <= credits_per_usd <= MAX_RATE:
        raise ValidationError(
            f"The rate must be a whole number from 1 to {MAX_RATE:,}.", field="credits_per_usd"
        )
    try:
        settings.check_topups_fit(settings.load(session).topup_options_usd, credits_per_usd)
    except ValidationError as exc:
        raise ValidationError(
            exc.message + " Lower the top-up options first.", field="credits_per_usd"
        ) from None
    old = current_rate(session).credits_per_usd
    change = RateChange(
        credits_per_usd=credits_per_usd,
        old_credits_per_usd=old,
        actor_id=actor.user_id,
        actor_label=actor.label,
        reason=reason,
    )
    session.add(change)
    session.flush()
    audit.record(
        session,
        actor,
        "rate.change",
        "exchange_rate",
        change.id,
        before={"credits_per_usd": old},
        after={"credits_per_usd": credits_per_usd},
        reason=reason,
    )
    bump_config_version(session)
    return change


def set_model_price(
    session: Session,
    actor: audit.Actor,
    name: str,
    *,
    input_uusd_per_m: int,
    output_uusd_per_m: int,
    enabled: bool = True,
    reason: str,
    display_name: str | None = None,
    create_only: bool = False,
) -> AiModel:
    """Create a model or change its prices / enabled flag, with history.

    With ``create_only`` (the admin's "Add a model" form) an existing name is
    refused with ``ModelExists`` and nothing changes: editing is a separate,
    deliberate act. The CLI's ``set-model-price`` creates or updates.
    """
    reason = audit.clean_reason(reason)
    if not MODEL_NAME.match(name or ""):
        raise ValidationError(
            "Model names are 1-100 letters, digits and . _ : / @ + -", field="name"
        )
    for value in (input_uusd_per_m, output_uusd_per_m):
        if type(value) is not int or not 0 <= value <= MAX_PRICE_UUSD_PER_M:
            raise ValidationError(
                "Prices are non-negative integers of micro-USD per 1M tokens, at most "
                f"{MAX_PRICE_UUSD_PER_M:,} ($1,000,000 per 1M tokens)."
            )
    model = session.scalar(select(AiModel).where(AiModel.name == name))
    if model is not None and create_only:
        raise ModelExists(
            f"A model named {name!r} already exists; change its prices on its own page.",
            field="name",
        )
    before = None if model is None else _price_state(model)
    if model is None:
        model = AiModel(name=name, display_name=display_name or name)
        session.add(model)
    elif display_name:
        model.display_name = display_name
    model.input_price_uusd_per_m = input_uusd_per_m
    model.output_price_uusd_per_m = output_uusd_per_m
    model.enabled = enabled
    try:
        session.flush()
    except IntegrityError:  # PostgreSQL: a concurrent transaction created the same name
        raise ModelExists(f"A model named {name!r} already exists.", field="name") from None
    change = ModelPriceChange(
        model_id=model.id,
        actor_id=actor.user_id,
        actor_label=actor.label,
        old_input_uusd_per_m=before and before["input_uusd_per_m"],
        old_output_uusd_per_m=before and before["output_uusd_per_m"],
        old_enabled=before and before["enabled"],
        new_input_uusd_per_m=input_uusd_per_m,
        new_output_uusd_per_m=output_uusd_per_m,
        new_enabled=enabled,
        reason=reason,
    )
    session.add(change)
    session.flush()
    model.price_version_id = change.id
    audit.record(
        session,
        actor,
        "model.create" if before is None else "model.update",
        "ai_model",
        model.name,
        before=before,
        after=_price_state(model),
        reason=reason,
    )
    bump_config_version(session)
    return model


def _price_state(model: AiModel) -> dict[str, object]:
    return {
        "input_uusd_per_m": model.input_price_uusd_per_m,
        "output_uusd_per_m": model.output_price_uusd_per_m,
        "input_usd_per_m": format_usd_per_m(model.input_price_uusd_per_m),
        "output_usd_per_m": format_usd_per_m(model.output_price_uusd_per_m),
        "enabled": model.enabled,
    }


# --- reading: what the admin pages show ---------------------------------------

RATE_HISTORY_LIMIT = 100


def rate_history(session: Session, limit: int = RATE_HISTORY_LIMIT) -> list[RateChange]:
    """The newest ``limit`` exchange-rate changes, newest first."""
    query = select(RateChange).order_by(RateChange.id.desc()).limit(limit)
    return list(session.scalars(query))


def models_by_name(session: Session) -> list[AiModel]:
    """Every model, enabled or not, in name order."""
    return list(session.scalars(select(AiModel).order_by(AiModel.name)))


def find_model(session: Session, model_id: int) -> AiModel | None:
    """The model with this id, or None."""
    return session.get(AiModel, model_id)


def price_history(session: Session, model_id: int) -> list[ModelPriceChange]:
    """Every price or enabled-flag change of one model, newest first."""
    query = (
        select(ModelPriceChange)
        .where(ModelPriceChange.model_id == model_id)
        .order_by(ModelPriceChange.id.desc())
    )
    return list(session.scalars(query))
