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
