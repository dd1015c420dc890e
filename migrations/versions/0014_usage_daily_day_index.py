"""usage_daily: an index on the day

Admin analytics read yesterday's and today's rollup rows of every user on
each view (and a day leaving and a day joining the 30-day window once a day).
The primary key starts with the user, so without this index those reads skip
through the key user by user (SQLite) or scan the table (PostgreSQL). The
debit's upsert writes the index only when it inserts a (user, day, model) row,
once a day per user and model; its updates change no indexed column.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 17:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.create_index("ix_usage_daily_day", ["day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_daily_day")
