"""Typed domain errors. Views map them to HTTP statuses; nothing here knows HTTP."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: a rule of the domain refused an operation."""

    code = "invalid_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationError(DomainError):
    """Input that can never be valid (bad number, empty reason, ...)."""

    code = "invalid_request"


class EmailTaken(DomainError):
    code = "conflict"


class UnknownUser(DomainError):
    code = "unknown_user"


class ModelExists(DomainError):
    """Raised when creating a model under a name that is already taken."""

    code = "conflict"


class BalanceLimit(DomainError):
    """Raised when a posting would take a balance past the ceiling of core.bounds."""

    code = "limit_exceeded"


class PasswordHashingBusy(DomainError):
    """Raised when a password check waited too long for a free hashing slot."""

    code = "busy"


class Conflict(DomainError):
    """The same idempotency key was used for a different payload."""

    code = "conflict"


class UsageRejected(DomainError):
    """A usage event that was recorded as rejected and not charged.

    Raised after the rejection has been committed, so the event is never lost.
    ``event_id`` and ``duplicate`` describe the stored event.
    """

    code = "rejected"

    def __init__(
        self, message: str, *, event_id: str = "", duplicate: bool = False, **details: Any
    ):
        super().__init__(message, **details)
        self.event_id = event_id
        self.duplicate = duplicate


class InsufficientCredits(UsageRejected):
    code = "insufficient_credits"


class UnknownModel(UsageRejected):
    code = "unknown_model"


class ModelDisabled(UsageRejected):
    code = "model_disabled"


class LimitExceeded(UsageRejected):
    code = "limit_exceeded"


class UnknownUsageUser(UsageRejected):
    code = "unknown_user"


class UserDisabled(UsageRejected):
    code = "user_disabled"


# reason_code stored on a rejected event -> the error to raise on replay.
REJECTIONS: dict[str, type[UsageRejected]] = {
    cls.code: cls
    for cls in (
        InsufficientCredits,
        UnknownModel,
        ModelDisabled,
        LimitExceeded,
        UnknownUsageUser,
        UserDisabled,
    )
}
