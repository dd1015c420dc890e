"""Alembic, driven from code so ``flask --app app db upgrade`` needs no alembic.ini.

On SQLite, batch migrations recreate tables, which foreign-key enforcement
would trip over; foreign keys are switched off for the run (the PRAGMA only
works outside a transaction) and checked with ``foreign_key_check`` after.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.db import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    _run(db, lambda cfg: command.upgrade(cfg, revision))


def downgrade(db: Database, revision: str) -> None:
    _run(db, lambda cfg: command.downgrade(cfg, revision))


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _run(db: Database, action: Callable[[Config], None]) -> None:
    cfg = alembic_config()
    with db.write_engine_connect() as conn:
        # PRAGMAs straight on the driver connection: going through SQLAlchemy
        # would autobegin a transaction, inside which this PRAGMA is a no-op.
        raw = conn.connection.driver_connection
        if db.is_sqlite:
            raw.execute("PRAGMA foreign_keys=OFF")
        cfg.attributes["connection"] = conn
        action(cfg)
        conn.commit()
        if db.is_sqlite:
            broken = raw.execute("PRAGMA foreign_key_check").fetchall()
            raw.execute("PRAGMA foreign_keys=ON")
            if broken:
                raise RuntimeError(f"foreign key violations after migration: {broken}")
