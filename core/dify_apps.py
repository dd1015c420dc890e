"""The organisation's Dify apps (admin side): register, edit, enable or disable.

An app is reached through Dify's Service API: a base URL (``…/v1``) and the
app's API key, which is sealed at rest (``core.secret_box``) and never shown
again. Each message to it holds the cost of ``max_input_tokens`` in and
``max_output_tokens`` out at its *billing model* (a priced model), and is
charged at that model from the usage Dify reports.

Every change is audited (the key appears only as "set" / "changed").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.dify_models import DifyApp
from core.errors import ValidationError
from core.gateway.routing import MAX_TOKENS_LIMIT, clean_base_url
from core.models import AiModel
from core.secret_box import SecretBox

DEFAULT_MAX_INPUT = 8_000
DEFAULT_MAX_OUTPUT = 2_000
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?")
# What the audit trail says of a new key (never the key itself).
KEY_CHANGED = "changed"


@dataclass(frozen=True)
class AppView:
    """An app as pages list it: its row and its billing model's name."""

    app: DifyApp
    model_name: str


def clean_slug(text: str) -> str:
    """A URL-safe slug: lower-case letters, digits and inner hyphens, 1-60 characters."""
    slug = (text or "").strip().lower()
    if not _SLUG.fullmatch(slug):
        raise ValidationError(
            "The slug must be 1-60 lower-case letters, digits or hyphens "
            "(not at the start or end).",
            field="slug",
        )
    return slug


def _name(text: str) -> str:
    name = (text or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError("The app's name must be 1-100 characters.", field="name")
    return name


def _tokens(value: int | None, default: int, what: str, field: str) -> int:
    if value is None:
        return default
    if type(value) is not int or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise ValidationError(
            f"{what} must be a whole number from 1 to {MAX_TOKENS_LIMIT:,}.", field=field
        )
    return value


def _model(session: Session, name: str) -> AiModel:
    model = session.scalar(select(AiModel).where(AiModel.name == (name or "").strip()))
    if model is None:
        raise ValidationError(
            f"No priced model named {(name or '').strip()!r}; price it first.",
            field="billing_model",
        )
    return model


def create_app(
    session: Session,
    actor: audit.Actor,
    box: SecretBox,
    *,
    slug: str,
    base_url: str,
    api_key: str,
    billing_model: str,
    name: str | None = None,
    max_input_tokens: int | None = None,
    max_output_tokens: int | None = None,
    enabled: bool = True,
) -> DifyApp:
    """A new app; its API key is stored sealed."""
    slug = clean_slug(slug)
    name = _name(name or slug)
    url = clean_base_url(base_url)
    key = (api_key or "").strip()
    if not key:
        raise ValidationError("The app's API key is required.", field="api_key")
    model = _model(session, billing_model)
    max_in = _tokens(max_input_tokens, DEFAULT_MAX_INPUT, "The max input", "max_input_tokens")
    max_out = _tokens(max_output_tokens, DEFAULT_MAX_OUTPUT, "The max output", "max_output_tokens")
    if session.scalar(select(DifyApp.id).where(DifyApp.slug == slug)) is not None:
        raise ValidationError("An app with this slug exists.", field="slug")
    row = DifyApp(
        slug=slug,
        name=name,
        base_url=url,
        key_sealed=box.seal(key),
        model_id=model.id,
        max_input_tokens=max_in,
        max_output_tokens=max_out,
        enabled=enabled,
    )
    session.add(row)
    session.flush()
    after = _described(row, model.name) | {"api_key": "set"}
    audit.record(session, actor, "dify_app.create", "dify_app", row.id, after=after)
    return row


def update_app(
    session: Session,
    actor: audit.Actor,
    box: SecretBox,
    app_id: int,
    *,
    name: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    billing_model: str | None = None,
    max_input_tokens: int | None = None,
    max_output_tokens: int | None = None,
    enabled: bool | None = None,
) -> DifyApp:
    """Change an app; None (or a blank key) keeps what is stored."""
    row = session.get(DifyApp, app_id)
    if row is None:
        raise ValidationError("No such app.")
    current_model = session.get(AiModel, row.model_id)
    assert current_model is not None
    before = _described(row, current_model.name)
    if name is not None:
        row.name = _name(name)
    if base_url is not None:
        row.base_url = clean_base_url(base_url)
    model = current_model if billing_model is None else _model(session, billing_model)
    row.model_id = model.id
    row.max_input_tokens = _tokens(
        max_input_tokens, row.max_input_tokens, "The max input", "max_input_tokens"
    )
    row.max_output_tokens = _tokens(
        max_output_tokens, row.max_output_tokens, "The max output", "max_output_tokens"
    )
    if enabled is not None:
        row.enabled = enabled
    after = _described(row, model.name)
    if api_key and api_key.strip():
        row.key_sealed = box.seal(api_key.strip())
        after["api_key"] = KEY_CHANGED
    if after != before:
        row.updated_at = utcnow()
        audit.record(
            session, actor, "dify_app.update", "dify_app", row.id, before=before, after=after
        )
    return row


def _described(row: DifyApp, model_name: str) -> dict[str, object]:
    return {
        "slug": row.slug,
        "name": row.name,
        "base_url": row.base_url,
        "billing_model": model_name,
        "max_input_tokens": row.max_input_tokens,
        "max_output_tokens": row.max_output_tokens,
        "enabled": row.enabled,
    }


def apps(session: Session, *, enabled_only: bool = False) -> list[AppView]:
    """Every app (or the enabled ones) by name, with its billing model's name."""
    query = select(DifyApp, AiModel.name).join(AiModel, AiModel.id == DifyApp.model_id)
    if enabled_only:
        query = query.where(DifyApp.enabled.is_(True))
    return [AppView(app, model) for app, model in session.execute(query.order_by(DifyApp.name))]


def find_app(session: Session, app_id: int) -> AppView | None:
    row = session.execute(
        select(DifyApp, AiModel.name)
        .join(AiModel, AiModel.id == DifyApp.model_id)
        .where(DifyApp.id == app_id)
    ).first()
    return AppView(row[0], row[1]) if row else None


def enabled_app(session: Session, slug: str) -> DifyApp | None:
    """The enabled app with this slug, or None."""
    return session.scalar(select(DifyApp).where(DifyApp.slug == slug, DifyApp.enabled.is_(True)))
