"""Settings as an operator types them (``set-setting NAME VALUE``), parsed to
what ``core.settings.update`` stores. Credits are typed as credits
(``12.5``), top-up options as ``5,10,25``; the webhook secret is sealed
(``core.secret_box``) before it is stored, and ``""`` clears it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from core import audit, settings
from core.errors import ValidationError
from core.pricing import parse_credits
from core.secret_box import SecretBox


def _whole(text: str) -> int:
    raw = text.strip().replace(",", "")
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationError("A whole number, e.g. 100000.")
    return int(raw)


def _options(text: str) -> tuple[int, ...]:
    return tuple(_whole(part) for part in text.split(",") if part.strip())


PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "registration": ("registration", lambda t: t.strip().lower()),
    "webhook_url": ("webhook_url", str.strip),
    "webhook_secret": ("webhook_secret", str),
    "topup_options": ("topup_options_usd", _options),
    "max_tokens_per_event": ("max_tokens_per_event", _whole),
    "max_credits_per_event": ("max_credits_per_event_ucr", parse_credits),
    "overdraft_limit": ("overdraft_limit_ucr", parse_credits),
    "default_low_balance_threshold": ("default_low_balance_threshold_ucr", parse_credits),
}


def parse(name: str, text: str) -> dict[str, Any]:
    """``{setting key: value}`` for one NAME VALUE pair."""
    if name not in PARSERS:
        raise ValidationError(f"Unknown setting {name!r}; one of: {', '.join(PARSERS)}.")
    key, parser = PARSERS[name]
    return {key: parser(text)}


def seal_secret(changes: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """``changes`` with a new webhook secret sealed (an empty one clears it)."""
    secret = changes.get("webhook_secret")
    if secret:
        if len(secret) < 16:
            raise ValidationError(
                "Use a webhook secret of at least 16 characters.", field="webhook_secret"
            )
        return {**changes, "webhook_secret": box.seal(secret)}
    return changes


def set_from_text(
    session: Session, actor: audit.Actor, name: str, text: str, reason: str, box: SecretBox
) -> settings.Settings:
    """Parse, seal and store one setting, audited (``core.settings.update``)."""
    return settings.update(session, actor, reason, **seal_secret(parse(name, text), box))
