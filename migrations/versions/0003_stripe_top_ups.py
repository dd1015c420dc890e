"""stripe top-ups

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 21:53:18.957546
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "topups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("wallet_id", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("credits_ucr", sa.BigInteger(), nullable=False),
        sa.Column("credits_per_usd", sa.BigInteger(), nullable=False),
        sa.Column("rate_version_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("refunded_cents", sa.BigInteger(), nullable=False),
        sa.Column("credited_ucr", sa.BigInteger(), nullable=False),
        sa.Column("refund_debited_ucr", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'failed', 'expired', 'paid')", name=op.f("ck_topups_status")
        ),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_topups_amount")),
        sa.ForeignKeyConstraint(
            ["rate_version_id"],
            ["exchange_rate_history.id"],
            name=op.f("fk_topups_rate_version_id_exchange_rate_history"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_topups_user_id_users")),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_topups_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topups")),
        sa.UniqueConstraint("checkout_session_id", name=op.f("uq_topups_checkout_session_id")),
    )
    with op.batch_alter_table("topups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_topups_payment_intent_id"), ["payment_intent_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_topups_user_id"), ["user_id"], unique=False)

    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("topup_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["topup_id"], ["topups.id"], name=op.f("fk_stripe_events_topup_id_topups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_table(
        "topup_disputes",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("topup_id", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("debited_ucr", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["topup_id"], ["topups.id"], name=op.f("fk_topup_disputes_topup_id_topups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topup_disputes")),
    )
    with op.batch_alter_table("topup_disputes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_topup_disputes_topup_id"), ["topup_id"], unique=False)

    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.create_index("ix_usage_events_user_id_id", ["user_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_user_id_id")
    with op.batch_alter_table("topup_disputes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_topup_disputes_topup_id"))

    op.drop_table("topup_disputes")
    op.drop_table("stripe_events")
    with op.batch_alter_table("topups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_topups_user_id"))
        batch_op.drop_index(batch_op.f("ix_topups_payment_intent_id"))

    op.drop_table("topups")
