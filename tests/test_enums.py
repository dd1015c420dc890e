"""The closed word sets of ``core.enums`` and the CHECK constraints built from them.

The models' constraints must be the very text the migrations created (so no
migration is needed and autogenerate sees nothing), and on a real database
each constraint takes every member of its enum and nothing else.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import pytest
from sqlalchemy import CheckConstraint, text
from sqlalchemy.exc import IntegrityError

from core import payments
from core.enums import LedgerKind, Role, TopUpStatus, UsageStatus, is_member
from core.models import Base
from tests.conftest import Billing

VERSIONS = Path(__file__).resolve().parents[1] / "migrations" / "versions"


def migrations_check_constraints() -> dict[str, str]:
    """Name -> SQL text of every CHECK constraint the migrations' upgrades leave:
    ``sa.CheckConstraint`` in new tables and ``create_check_constraint`` (a
    later revision replacing one), in revision order."""
    found: dict[str, str] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        upgrades = [
            node
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef) and node.name == "upgrade"
        ]
        for node in (n for upgrade in upgrades for n in ast.walk(upgrade)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr == "CheckConstraint":
                [name] = [k.value for k in node.keywords if k.arg == "name"]
                sql = node.args[0]
            elif node.func.attr == "create_check_constraint":
                name, sql = node.args[0], node.args[1]
            else:
                continue
            assert isinstance(name, ast.Call)  # op.f("ck_<table>_<name>")
            found[ast.literal_eval(name.args[0])] = ast.literal_eval(sql)
    return found


def model_check_constraints() -> dict[str, str]:
    """Name -> SQL text of every CHECK constraint the models declare."""
    return {
        str(constraint.name): str(constraint.sqltext)
        for table in Base.metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }


def test_models_check_constraints_are_the_migrations_text() -> None:
    models = model_check_constraints()
    assert models == migrations_check_constraints()
    assert models["ck_users_role"] == "role IN ('user', 'admin')"
    assert models["ck_ledger_entries_kind"] == (
        "kind IN ('topup', 'usage', 'refund', 'dispute', 'adjustment', 'reversal')"
    )
    assert models["ck_usage_events_status"] == "status IN ('charged', 'rejected', 'estimated')"
    assert models["ck_holds_status"] == "status IN ('active', 'settled', 'released', 'expired')"
    assert models["ck_topups_status"] == "status IN ('pending', 'failed', 'expired', 'paid')"


def test_members_are_their_strings() -> None:
    assert UsageStatus.CHARGED == "charged" and f"{LedgerKind.USAGE}" == "usage"
    assert is_member("admin", Role) and not is_member("root", Role)
    assert not is_member(None, Role) and not is_member(1, TopUpStatus)


# --- on a real database -------------------------------------------------------------


def _user_row(billing: Billing) -> tuple[str, int]:
    return "users", billing.user("role@example.com").id


def _usage_event_row(billing: Billing) -> tuple[str, int]:
    billing.user("usage@example.com", 100 * 1_000_000)
    billing.debit("check-1", "usage@example.com")
    with billing.db.read_session() as s:
        return "usage_events", s.execute(text("SELECT max(id) FROM usage_events")).scalar_one()


def _topup_row(billing: Billing) -> tuple[str, int]:
    user = billing.user("topup@example.com")
    with billing.db.write() as s:
        return "topups", payments.start_topup(s, billing.prices, user.id, 10).id


UPDATED: list[tuple[type[StrEnum], str, Callable[[Billing], tuple[str, int]]]] = [
    (Role, "role", _user_row),
    (UsageStatus, "status", _usage_event_row),
    (TopUpStatus, "status", _topup_row),
]


@pytest.mark.parametrize(("enum", "column", "make_row"), UPDATED, ids=["role", "usage", "topup"])
def test_a_constraint_takes_every_member_and_nothing_else(
    billing: Billing,
    enum: type[StrEnum],
    column: str,
    make_row: Callable[[Billing], tuple[str, int]],
) -> None:
    table, row_id = make_row(billing)
    sql = text(f"UPDATE {table} SET {column} = :value WHERE id = :id")
    for member in enum:
        with billing.db.write() as s:
            assert s.execute(sql, {"value": member, "id": row_id}).rowcount == 1
    for outsider in ("unknown", next(iter(enum)).upper()):  # the case matters too
        with pytest.raises(IntegrityError), billing.db.write() as s:
            s.execute(sql, {"value": outsider, "id": row_id})


def test_the_ledger_kind_constraint_takes_every_kind_and_nothing_else(billing: Billing) -> None:
    # Ledger entries cannot be updated (append-only), so each kind is inserted.
    wallet = billing.user("kinds@example.com").wallet.id
    insert = text(
        "INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind, memo,"
        " created_at) VALUES (:wallet, 0, 0, :kind, '', :at)"
    )
    at = datetime(2026, 1, 1)
    for kind in LedgerKind:
        with billing.db.write() as s:
            s.execute(insert, {"wallet": wallet, "kind": kind, "at": at})
    for outsider in ("credit", "USAGE"):
        with pytest.raises(IntegrityError), billing.db.write() as s:
            s.execute(insert, {"wallet": wallet, "kind": outsider, "at": at})
    with billing.db.read_session() as s:
        kinds = s.execute(text("SELECT kind FROM ledger_entries ORDER BY id")).scalars().all()
    assert kinds == list(LedgerKind)
