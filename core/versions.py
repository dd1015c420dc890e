"""The config version counter (see ``core.models.ConfigVersion``)."""

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import ConfigVersion


def bump_config_version(session: Session) -> None:
    session.execute(update(ConfigVersion).values(version=ConfigVersion.version + 1))


def config_version(session: Session) -> int:
    return session.execute(select(ConfigVersion.version)).scalar_one()
