"""usage_window_totals: the closed days' usage sums, kept for new processes

Admin analytics sum the rollups of the closed days of their 30-day window
once per process; the sum is stored here so a restarted server reads one row
instead of ~300k rollup rows. Derived data: the rows may be deleted at any
time.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_window_totals",
        sa.Column("window_days", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("totals", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("window_days", name=op.f("pk_usage_window_totals")),
    )


def downgrade() -> None:
    op.drop_table("usage_window_totals")
