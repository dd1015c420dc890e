"""Admin-tunable settings with the spec's defaults.

Stored as JSON values in ``settings``; a missing row means the default. Every
change is audited and bumps the config version, so every worker sees it on
its next event (see ``core.pricebook``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit, bounds
from core.clock import utcnow
from core.errors import ValidationError
from core.models import RateChange, Setting
from core.pricing import MICRO
from core.versions import bump_config_version


@dataclass(frozen=True)
class Settings:
    overdraft_limit_ucr: int = 0
    max_tokens_per_event: int = 10_000_000
    max_credits_per_event_ucr: int = 1_000_000 * MICRO
    default_low_balance_threshold_ucr: int = 5_000 * MICRO  # 10 % of a $5 top-up at 10,000/USD
    topup_options_usd: tuple[int, ...] = (5, 10, 25, 50, 100)
    registration: str = "open"  # "open" | "invite" | "closed"
    webhook_url: str = ""  # "" -> no webhook events
    webhook_secret: str = ""  # sealed (core.secret_box); set through set_webhook_secret


REGISTRATION_MODES = ("open", "invite", "closed")
TEXT_SETTINGS = frozenset({"registration", "webhook_url", "webhook_secret"})


_FIELDS = {f.name for f in dataclasses.fields(Settings)}


def load(session: Session) -> Settings:
    return from_rows((row.key, row.value) for row in session.scalars(select(Setting)))


def from_rows(rows: Iterable[tuple[str, str]]) -> Settings:
    """Settings from stored (key, JSON value) rows; unknown keys are ignored."""
    stored = {key: json.loads(value) for key, value in rows}
    known = {k: v for k, v in stored.items() if k in _FIELDS}
    if "topup_options_usd" in known:
        known["topup_options_usd"] = tuple(known["topup_options_usd"])
    return dataclasses.replace(Settings(), **known)


# The largest value of each integer setting (core.bounds explains the ceilings).
MAXIMA = {
    "overdraft_limit_ucr": bounds.MAX_AMOUNT_UCR,
    "max_tokens_per_event": bounds.MAX_TOKENS_PER_EVENT,
    "max_credits_per_event_ucr": bounds.MAX_AMOUNT_UCR,
    "default_low_balance_threshold_ucr": bounds.MAX_AMOUNT_UCR,
}


def changed_settings(current: Settings, proposed: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``proposed`` that differ from ``current``: what ``update``
    needs to be given. A key ``Settings`` does not have counts as a change, so
    ``update`` refuses it rather than it being dropped here unseen."""
    return {k: v for k, v in proposed.items() if k not in _FIELDS or getattr(current, k) != v}


def validate(changes: dict[str, Any]) -> None:
    unknown = set(changes) - _FIELDS
    if unknown:
        raise ValidationError(f"Unknown settings: {', '.join(sorted(unknown))}")
    top = bounds.MAX_TOPUP_OPTION_USD
    for key, value in changes.items():
        if key == "topup_options_usd":
            if not value or any(type(v) is not int or not 1 <= v <= top for v in value):
                raise ValidationError(
                    f"Top-up options are whole dollar amounts from 1 to {top:,}.",
                    field="topup_options",
                )
            if len(set(value)) != len(value):
                raise ValidationError(
                    "Top-up options must differ from each other.", field="topup_options"
                )
        elif key in TEXT_SETTINGS:
            _validate_text(key, value)
        elif type(value) is not int or value < 0:
            raise ValidationError(f"{key} must be a non-negative whole number.")
        elif value > MAXIMA[key]:
            raise ValidationError(f"{key} must be at most {MAXIMA[key]:,}.")
    if changes.get("max_tokens_per_event") == 0 or changes.get("max_credits_per_event_ucr") == 0:
        raise ValidationError("A per-event cap of zero would reject every event.")


def _validate_text(key: str, value: Any) -> None:
    if type(value) is not str:
        raise ValidationError(f"{key} must be text.", field=key)
    if key == "registration" and value not in REGISTRATION_MODES:
        raise ValidationError("Registration is one of: open, invite, closed.", field=key)
    if key == "webhook_url" and value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 500:
            raise ValidationError(
                "The webhook URL must be an http:// or https:// address.", field=key
            )


def check_topups_fit(options_usd: tuple[int, ...], credits_per_usd: int) -> None:
    """Refuse a combination of top-up options and rate whose credits overflow the
    ceiling of one amount (checked on either change: the options or the rate)."""
    usd = bounds.oversized_topup(options_usd, credits_per_usd)
    if usd is None:
        return
    most = bounds.MAX_AMOUNT_UCR // bounds.topup_credits_ucr(1, credits_per_usd)
    raise ValidationError(
        f"At {credits_per_usd:,} credits per USD the ${usd:,} top-up would buy "
        f"{usd * credits_per_usd:,} credits, more than the {bounds.MAX_CREDITS:,} one "
        f"amount may hold; at this rate top-ups can be at most ${most:,}.",
        field="topup_options",
    )


def update(session: Session, actor: audit.Actor, reason: str, **changes: Any) -> Settings:
    """Change settings in the caller's transaction, audited, version bumped."""
    reason = audit.clean_reason(reason)
    validate(changes)
    if "topup_options_usd" in changes:
        rate = session.scalar(
            select(RateChange.credits_per_usd).order_by(RateChange.id.desc()).limit(1)
        )
        check_topups_fit(tuple(changes["topup_options_usd"]), rate or 1)
    before = load(session)
    for key, value in changes.items():
        stored = json.dumps(list(value) if isinstance(value, tuple) else value)
        row = session.get(Setting, key)
        if row is None:
            session.add(Setting(key=key, value=stored, updated_at=utcnow()))
        else:
            row.value = stored
    session.flush()
    after = load(session)
    audit.record(
        session,
        actor,
        "settings.update",
        "settings",
        None,
        before={k: _shown(k, getattr(before, k)) for k in changes},
        after={k: _shown(k, getattr(after, k)) for k in changes},
        reason=reason,
    )
    bump_config_version(session)
    return after


def _shown(key: str, value: Any) -> Any:
    """A setting as the audit log shows it: never a secret, only whether one is set."""
    if key == "webhook_secret":
        return "set" if value else "not set"
    return value
