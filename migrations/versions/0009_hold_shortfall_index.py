"""holds: a partial index on the calls that cost more than their hold

Admin analytics show the shortfalls of the last 30 days; the index holds only
those rows (``shortfall_ucr > 0``), so the figure is read without scanning
every call's hold.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_holds_shortfall_closed",
            ["closed_at"],
            unique=False,
            sqlite_where=sa.text("shortfall_ucr > 0"),
            postgresql_where=sa.text("shortfall_ucr > 0"),
        )


def downgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_shortfall_closed")
