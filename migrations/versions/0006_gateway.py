"""metering gateway: upstreams, routes, user keys, holds; reserved credits

``wallets.reserved_ucr`` is the sum of the wallet's active holds (0 for every
existing wallet: there are none yet). Usage events gain the hold they settle
(unique: one event per hold), the user key, the source users see ("API" for
every existing event), a ``disconnected`` mark and the status ``estimated``;
their integration key becomes optional (gateway and chat calls have none).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 17:21:43
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upstreams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstreams")),
        sa.UniqueConstraint("name", name=op.f("uq_upstreams_name")),
    )
    op.create_table(
        "gateway_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("upstream_id", sa.Integer(), nullable=False),
        sa.Column("upstream_model", sa.String(length=200), nullable=False),
        sa.Column("context_window", sa.BigInteger(), nullable=False),
        sa.Column("max_output", sa.BigInteger(), nullable=False),
        sa.Column("default_output_cap", sa.BigInteger(), nullable=False),
        sa.Column("overhead", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "context_window > 0 AND max_output > 0 AND default_output_cap > 0 AND default_output_cap <= max_output AND overhead >= 0",
            name=op.f("ck_gateway_routes_limits"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["ai_models.id"], name=op.f("fk_gateway_routes_model_id_ai_models")
        ),
        sa.ForeignKeyConstraint(
            ["upstream_id"], ["upstreams.id"], name=op.f("fk_gateway_routes_upstream_id_upstreams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_routes")),
        sa.UniqueConstraint("model_id", name=op.f("uq_gateway_routes_model_id")),
    )
    with op.batch_alter_table("gateway_routes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_routes_upstream_id"), ["upstream_id"], unique=False
        )

    op.create_table(
        "user_api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("limit_ucr", sa.BigInteger(), nullable=True),
        sa.Column("spent_ucr", sa.BigInteger(), nullable=False),
        sa.Column("reserved_ucr", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "limit_ucr IS NULL OR limit_ucr >= 0", name=op.f("ck_user_api_keys_limit")
        ),
        sa.CheckConstraint(
            "spent_ucr >= 0 AND reserved_ucr >= 0", name=op.f("ck_user_api_keys_amounts")
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by_id"], ["users.id"], name=op.f("fk_user_api_keys_revoked_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_api_keys_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_user_api_keys_key_hash")),
        sa.UniqueConstraint("prefix", name=op.f("uq_user_api_keys_prefix")),
    )
    with op.batch_alter_table("user_api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_api_keys_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_user_api_keys_live_name",
            ["user_id", "name"],
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )

    op.create_table(
        "holds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("wallet_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("user_key_id", sa.Integer(), nullable=True),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("amount_ucr", sa.BigInteger(), nullable=False),
        sa.Column("max_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("max_output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("credits_per_usd", sa.BigInteger(), nullable=False),
        sa.Column("input_price_uusd_per_m", sa.BigInteger(), nullable=False),
        sa.Column("output_price_uusd_per_m", sa.BigInteger(), nullable=False),
        sa.Column("rate_version_id", sa.Integer(), nullable=True),
        sa.Column("price_version_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("charged_ucr", sa.BigInteger(), nullable=True),
        sa.Column("shortfall_ucr", sa.BigInteger(), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'settled', 'released', 'expired')", name=op.f("ck_holds_status")
        ),
        sa.CheckConstraint("amount_ucr >= 0 AND shortfall_ucr >= 0", name=op.f("ck_holds_amounts")),
        sa.CheckConstraint(
            "charged_ucr IS NULL OR (charged_ucr >= 0 AND charged_ucr <= amount_ucr)",
            name=op.f("ck_holds_charged"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["ai_models.id"], name=op.f("fk_holds_model_id_ai_models")
        ),
        sa.ForeignKeyConstraint(
            ["price_version_id"],
            ["model_price_history.id"],
            name=op.f("fk_holds_price_version_id_model_price_history"),
        ),
        sa.ForeignKeyConstraint(
            ["rate_version_id"],
            ["exchange_rate_history.id"],
            name=op.f("fk_holds_rate_version_id_exchange_rate_history"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_holds_user_id_users")),
        sa.ForeignKeyConstraint(
            ["user_key_id"], ["user_api_keys.id"], name=op.f("fk_holds_user_key_id_user_api_keys")
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_holds_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index("ix_holds_status_expires", ["status", "expires_at"], unique=False)
        batch_op.create_index("ix_holds_wallet_status", ["wallet_id", "status"], unique=False)

    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "hold_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(sa.Column("user_key_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("source", sa.String(length=120), server_default="API", nullable=False)
        )
        batch_op.add_column(
            sa.Column("disconnected", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.alter_column("integration_key_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_unique_constraint(batch_op.f("uq_usage_events_hold_id"), ["hold_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_usage_events_hold_id_holds"), "holds", ["hold_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_usage_events_user_key_id_user_api_keys"),
            "user_api_keys",
            ["user_key_id"],
            ["id"],
        )
        batch_op.drop_constraint(batch_op.f("ck_usage_events_status"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_usage_events_status"), "status IN ('charged', 'rejected', 'estimated')"
        )

    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reserved_ucr", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.drop_column("reserved_ucr")

    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_usage_events_status"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_usage_events_status"), "status IN ('charged', 'rejected')"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_usage_events_user_key_id_user_api_keys"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_usage_events_hold_id_holds"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_usage_events_hold_id"), type_="unique")
        batch_op.alter_column("integration_key_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("disconnected")
        batch_op.drop_column("source")
        batch_op.drop_column("user_key_id")
        batch_op.drop_column("hold_id")

    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_wallet_status")
        batch_op.drop_index("ix_holds_status_expires")

    op.drop_table("holds")
    with op.batch_alter_table("user_api_keys", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_user_api_keys_live_name",
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_user_api_keys_user_id"))

    op.drop_table("user_api_keys")
    with op.batch_alter_table("gateway_routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_routes_upstream_id"))

    op.drop_table("gateway_routes")
    op.drop_table("upstreams")
