"""top-up postings and payment anomalies

``topup_postings`` links each ledger entry made for a top-up to it (append-only,
like the ledger), filled here for existing entries from their references:
``topup:<session id or top-up id>``, ``refund:<top-up id>:<cents>``,
``dispute:<dispute id>`` and ``dispute-won:<dispute id>``.
``payment_anomalies`` holds what admins must look at.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import append_only

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "topup_postings",
        sa.Column("ledger_entry_id", BigId, nullable=False),
        sa.Column("topup_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_topup_postings_ledger_entry_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["topup_id"], ["topups.id"], name=op.f("fk_topup_postings_topup_id_topups")
        ),
        sa.PrimaryKeyConstraint("ledger_entry_id", name=op.f("pk_topup_postings")),
    )
    with op.batch_alter_table("topup_postings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_topup_postings_topup_id"), ["topup_id"], unique=False)

    op.create_table(
        "payment_anomalies",
        sa.Column("id", BigId, nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("topup_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["topup_id"], ["topups.id"], name=op.f("fk_payment_anomalies_topup_id_topups")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_payment_anomalies_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_anomalies")),
        sa.UniqueConstraint("code", "reference", name=op.f("uq_payment_anomalies_code_reference")),
    )
    with op.batch_alter_table("payment_anomalies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_anomalies_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_payment_anomalies_user_id"), ["user_id"], unique=False)

    _link_existing_entries()
    append_only.create(op, "topup_postings")


def _link_existing_entries() -> None:
    conn = op.get_bind()
    topups = conn.execute(sa.text("SELECT id, checkout_session_id FROM topups")).all()
    by_session = {session_id: topup_id for topup_id, session_id in topups if session_id}
    ids = {str(topup_id): topup_id for topup_id, _ in topups}
    disputes = dict(conn.execute(sa.text("SELECT id, topup_id FROM topup_disputes")).all())
    links = []
    entries = conn.execute(
        sa.text(
            "SELECT id, kind, reference FROM ledger_entries WHERE reference IS NOT NULL"
            " AND kind IN ('topup', 'refund', 'dispute', 'reversal')"
        )
    )
    for entry_id, kind, reference in entries:
        prefix, _, rest = reference.partition(":")
        if kind == "topup" and prefix == "topup":
            topup_id = by_session.get(rest) or ids.get(rest)
        elif kind == "refund" and prefix == "refund":
            topup_id = ids.get(rest.partition(":")[0])
        elif (kind, prefix) in (("dispute", "dispute"), ("reversal", "dispute-won")):
            topup_id = disputes.get(rest)
        else:
            topup_id = None
        if topup_id is not None:
            links.append({"ledger_entry_id": entry_id, "topup_id": topup_id})
    if links:
        table = sa.table("topup_postings", sa.column("ledger_entry_id"), sa.column("topup_id"))
        op.bulk_insert(table, links)


def downgrade() -> None:
    append_only.drop(op, "topup_postings")
    with op.batch_alter_table("payment_anomalies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_anomalies_user_id"))
        batch_op.drop_index(batch_op.f("ix_payment_anomalies_created_at"))
    op.drop_table("payment_anomalies")
    with op.batch_alter_table("topup_postings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_topup_postings_topup_id"))
    op.drop_table("topup_postings")
