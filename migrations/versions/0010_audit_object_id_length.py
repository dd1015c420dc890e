"""audit_log.object_id: 200 characters (a model's name may have 100)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column(
            "object_id", existing_type=sa.String(length=64), type_=sa.String(length=200)
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column(
            "object_id", existing_type=sa.String(length=200), type_=sa.String(length=64)
        )
