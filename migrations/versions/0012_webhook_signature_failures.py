"""webhook_signature_failures: refused webhook deliveries, one row per source

A wrong STRIPE_WEBHOOK_SECRET makes every delivery fail its signature check;
the admin settings page shows how many did, since when and the last one. One
row per source, updated in place, so refused deliveries never grow the table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_signature_failures",
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_webhook_signature_failures")),
    )


def downgrade() -> None:
    op.drop_table("webhook_signature_failures")
