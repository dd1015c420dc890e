"""Admin-tunable settings with the spec's defaults.

Stored as JSON values in ``settings``; a missing row means the default. Every
change is audited and bumps the config version, so every worker sees it on
its next event (see ``core.pricebook``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.errors import ValidationError
from core.models import Setting
from core.pricing import MICRO
from core.versions import bump_config_version


@dataclass(frozen=True)
class Settings:
    overdraft_limit_ucr: int = 0
    max_tokens_per_event: int = 10_000_000
    max_credits_per_event_ucr: int = 1_000_000 * MICRO
    default_low_balance_threshold_ucr: int = 5_000 * MICRO  # 10 % of a $5 top-up at 10,000/USD
    topup_options_usd: tuple[int, ...] = (5, 10, 25, 50, 100)


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


def validate(changes: dict[str, Any]) -> None:
    unknown = set(changes) - _FIELDS
    if unknown:
        raise ValidationError(f"Unknown settings: {', '.join(sorted(unknown))}")
    for key, value in changes.items():
        if key == "topup_options_usd":
            if not value or any(type(v) is not int or not 1 <= v <= 10_000 for v in value):
                raise ValidationError("Top-up options are whole dollar amounts from 1 to 10,000.")
            if len(set(value)) != len(value):
                raise ValidationError("Top-up options must differ from each other.")
        elif type(value) is not int or value < 0:
            raise ValidationError(f"{key} must be a non-negative whole number.")
    if changes.get("max_tokens_per_event") == 0 or changes.get("max_credits_per_event_ucr") == 0:
        raise ValidationError("A per-event cap of zero would reject every event.")


def update(session: Session, actor: audit.Actor, reason: str, **changes: Any) -> Settings:
    """Change settings in the caller's transaction, audited, version bumped."""
    if not reason.strip():
        raise ValidationError("A reason is required.")
    validate(changes)
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
        before={k: getattr(before, k) for k in changes},
        after={k: getattr(after, k) for k in changes},
        reason=reason,
    )
    bump_config_version(session)
    return after
