"""The closed sets of words stored in the database, one ``StrEnum`` each.

A member *is* its string (``UsageStatus.CHARGED == "charged"``), so members
go straight into SQL parameters, JSON and templates, and rows read back as
plain strings compare equal to them. The CHECK constraints of
``core.models`` are built from these enums with ``check_in``, which writes
exactly the text the migrations created (``tests/test_enums.py`` compares
them), so adding a member needs a migration as well as a line here.

Python 3.11's ``in`` on an Enum class raises for a plain string: test
membership with ``is_member``.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import CheckConstraint


class Role(StrEnum):
    """What a user may do: ``admin`` reaches /admin and the admin actions."""

    USER = "user"
    ADMIN = "admin"


class LedgerKind(StrEnum):
    """Why a ledger entry moved credits."""

    TOPUP = "topup"  # a paid card top-up
    USAGE = "usage"  # a charged usage event
    REFUND = "refund"  # a card refund claws back credits
    DISPUTE = "dispute"  # a card dispute claws back credits
    ADJUSTMENT = "adjustment"  # an admin's correction
    REVERSAL = "reversal"  # a won dispute gives them back


class UsageStatus(StrEnum):
    """A stored usage event was charged (from reported usage or, for a call the
    gateway could only estimate, ``estimated``), or rejected with its reason."""

    CHARGED = "charged"
    REJECTED = "rejected"
    ESTIMATED = "estimated"


# The statuses whose events took credits (each has its usage ledger entry).
CHARGED_STATUSES = (UsageStatus.CHARGED, UsageStatus.ESTIMATED)


class HoldStatus(StrEnum):
    """Where a hold is in its life (``core.holds``); it leaves ``active`` once."""

    ACTIVE = "active"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


class TopUpStatus(StrEnum):
    """A card top-up's state; it only moves forward (``core.payments.advance``)."""

    PENDING = "pending"
    FAILED = "failed"
    EXPIRED = "expired"
    PAID = "paid"


class DisputeStatus(StrEnum):
    """A card dispute: open until Stripe closes it won or lost."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class AnomalyCode(StrEnum):
    """Why a payment needs an admin's look (``core.payment_anomalies``)."""

    SESSION_MISMATCH = "session_mismatch"
    AMOUNT_MISMATCH = "amount_mismatch"
    PROVIDER_ERROR = "provider_error"


def is_member(value: object, enum: type[StrEnum]) -> bool:
    """Whether ``value`` is one of ``enum``'s strings."""
    try:
        enum(value)
    except ValueError:
        return False
    return True


def check_in(column: str, enum: type[StrEnum], name: str) -> CheckConstraint:
    """``CHECK (<column> IN ('a', 'b', …))`` over the members, in definition order."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name)
