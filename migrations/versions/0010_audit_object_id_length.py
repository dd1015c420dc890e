"""audit_log.object_id: 200 characters (a model's name may have 100)

On SQLite the batch operation rebuilds the table, which drops its
append-only triggers; they are created again on the new table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import append_only

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _resize(old: int, new: int) -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column(
            "object_id", existing_type=sa.String(length=old), type_=sa.String(length=new)
        )
    if op.get_bind().dialect.name == "sqlite":  # the rebuilt table lost its triggers
        append_only.create(op, "audit_log")


def upgrade() -> None:
    _resize(64, 200)


def downgrade() -> None:
    _resize(200, 64)
