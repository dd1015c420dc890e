"""The config version counter (see ``core.models.ConfigVersion``)."""

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.models import ConfigVersion


def bump_config_version(session: Session) -> None:
    session.execute(update(ConfigVersion).values(version=ConfigVersion.version + 1))
