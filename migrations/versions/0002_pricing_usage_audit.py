"""pricing usage audit

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 21:15:55.553054
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from migrations import append_only

# Rows of these tables are history: the database refuses UPDATE and DELETE.
APPEND_ONLY = ("audit_log", "ledger_entries", "model_price_history", "exchange_rate_history")

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ai_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("input_price_uusd_per_m", sa.BigInteger(), nullable=False),
        sa.Column("output_price_uusd_per_m", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("price_version_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("input_price_uusd_per_m >= 0", name=op.f("ck_ai_models_input_price")),
        sa.CheckConstraint("output_price_uusd_per_m >= 0", name=op.f("ck_ai_models_output_price")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_models")),
        sa.UniqueConstraint("name", name=op.f("uq_ai_models_name")),
    )
    op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_version")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_audit_log_actor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_created_at"), ["created_at"], unique=False)

    op.create_table(
        "exchange_rate_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("credits_per_usd", sa.BigInteger(), nullable=False),
        sa.Column("old_credits_per_usd", sa.BigInteger(), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "credits_per_usd BETWEEN 1 AND 1000000000",
            name=op.f("ck_exchange_rate_history_credits_per_usd"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_exchange_rate_history_actor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_rate_history")),
    )
    op.create_table(
        "integration_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_integration_keys_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_integration_keys_key_hash")),
        sa.UniqueConstraint("prefix", name=op.f("uq_integration_keys_prefix")),
    )
    op.create_table(
        "model_price_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("old_input_uusd_per_m", sa.BigInteger(), nullable=True),
        sa.Column("old_output_uusd_per_m", sa.BigInteger(), nullable=True),
        sa.Column("old_enabled", sa.Boolean(), nullable=True),
        sa.Column("new_input_uusd_per_m", sa.BigInteger(), nullable=False),
        sa.Column("new_output_uusd_per_m", sa.BigInteger(), nullable=False),
        sa.Column("new_enabled", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_model_price_history_actor_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["ai_models.id"], name=op.f("fk_model_price_history_model_id_ai_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_price_history")),
    )
    with op.batch_alter_table("model_price_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_price_history_model_id"), ["model_id"], unique=False
        )

    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_user_id"), ["user_id"], unique=False)

    op.create_table(
        "usage_daily",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_ucr", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["ai_models.id"], name=op.f("fk_usage_daily_model_id_ai_models")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_daily_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "day", "model_id", name=op.f("pk_usage_daily")),
    )
    op.create_table(
        "usage_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("integration_key_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("user_ref", sa.String(length=254), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_ucr", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("credits_per_usd", sa.BigInteger(), nullable=True),
        sa.Column("input_price_uusd_per_m", sa.BigInteger(), nullable=True),
        sa.Column("output_price_uusd_per_m", sa.BigInteger(), nullable=True),
        sa.Column("rate_version_id", sa.Integer(), nullable=True),
        sa.Column("price_version_id", sa.Integer(), nullable=True),
        sa.Column("balance_after_ucr", sa.BigInteger(), nullable=True),
        sa.Column("conversation_id", sa.String(length=200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('charged', 'rejected')", name=op.f("ck_usage_events_status")
        ),
        sa.CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0", name=op.f("ck_usage_events_tokens")
        ),
        sa.ForeignKeyConstraint(
            ["integration_key_id"],
            ["integration_keys.id"],
            name=op.f("fk_usage_events_integration_key_id_integration_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["ai_models.id"], name=op.f("fk_usage_events_model_id_ai_models")
        ),
        sa.ForeignKeyConstraint(
            ["price_version_id"],
            ["model_price_history.id"],
            name=op.f("fk_usage_events_price_version_id_model_price_history"),
        ),
        sa.ForeignKeyConstraint(
            ["rate_version_id"],
            ["exchange_rate_history.id"],
            name=op.f("fk_usage_events_rate_version_id_exchange_rate_history"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_events_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_events")),
        sa.UniqueConstraint(
            "integration_key_id",
            "event_id",
            name=op.f("uq_usage_events_integration_key_id_event_id"),
        ),
    )
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.create_index("ix_usage_events_user_received", ["user_id", "received_at"])
        batch_op.create_index("ix_usage_events_status_received", ["status", "received_at"])

    op.execute("INSERT INTO config_version (id, version) VALUES (1, 1)")
    # There is always a current rate: the spec's example, until an admin sets one.
    rates = sa.table(
        "exchange_rate_history",
        sa.column("credits_per_usd", sa.BigInteger),
        sa.column("actor_label", sa.String),
        sa.column("reason", sa.Text),
        sa.column("changed_at", sa.DateTime),
    )
    op.bulk_insert(
        rates,
        [
            {
                "credits_per_usd": 10_000,
                "actor_label": "system",
                "reason": "initial rate",
                "changed_at": datetime.now(UTC).replace(tzinfo=None),
            }
        ],
    )
    for table in APPEND_ONLY:
        append_only.create(op, table)


def downgrade() -> None:
    for table in APPEND_ONLY:
        append_only.drop(op, table)
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_status_received")
        batch_op.drop_index("ix_usage_events_user_received")
    op.drop_table("usage_events")
    op.drop_table("usage_daily")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_user_id"))

    op.drop_table("notifications")
    with op.batch_alter_table("model_price_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_price_history_model_id"))

    op.drop_table("model_price_history")
    op.drop_table("integration_keys")
    op.drop_table("exchange_rate_history")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_created_at"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
    op.drop_table("config_version")
    op.drop_table("ai_models")
