"""chat with Dify apps: apps, users' conversations, turns

A Dify app carries its Service API base URL, its API key (sealed), its
billing model and the per-message worst case in tokens. A conversation
belongs to one user and one app; a turn is one message and its answer, with
the hold that pays for it (one turn per hold).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 20:08:10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dify_apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("max_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("max_output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "max_input_tokens > 0 AND max_output_tokens > 0", name=op.f("ck_dify_apps_limits")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["ai_models.id"], name=op.f("fk_dify_apps_model_id_ai_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dify_apps")),
        sa.UniqueConstraint("slug", name=op.f("uq_dify_apps_slug")),
    )
    with op.batch_alter_table("dify_apps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dify_apps_model_id"), ["model_id"], unique=False)

    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("dify_conversation_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["dify_apps.id"], name=op.f("fk_chat_conversations_app_id_dify_apps")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chat_conversations_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_conversations")),
    )
    with op.batch_alter_table("chat_conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chat_conversations_user_app", ["user_id", "app_id", "updated_at"], unique=False
        )

    op.create_table(
        "chat_turns",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("hold_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("task_id", sa.String(length=100), nullable=True),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("charged_ucr", sa.BigInteger(), nullable=True),
        sa.Column("dify_total_price", sa.String(length=40), nullable=True),
        sa.Column("disconnected", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'running', 'done', 'failed')", name=op.f("ck_chat_turns_state")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_turns_conversation_id_chat_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["holds.id"], name=op.f("fk_chat_turns_hold_id_holds")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chat_turns_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_turns")),
        sa.UniqueConstraint("hold_id", name=op.f("uq_chat_turns_hold_id")),
    )
    with op.batch_alter_table("chat_turns", schema=None) as batch_op:
        batch_op.create_index("ix_chat_turns_conversation", ["conversation_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_chat_turns_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chat_turns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_turns_user_id"))
        batch_op.drop_index("ix_chat_turns_conversation")

    op.drop_table("chat_turns")
    with op.batch_alter_table("chat_conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_conversations_user_app")

    op.drop_table("chat_conversations")
    with op.batch_alter_table("dify_apps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dify_apps_model_id"))

    op.drop_table("dify_apps")
