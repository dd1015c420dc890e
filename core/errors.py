"""Typed domain errors: one hierarchy under ``DomainError``. Nothing here knows HTTP.

Design:
    DomainError                 root: a rule of the domain refused an operation
      ValidationError           input that can never be valid
        AmountError             a decimal string that is not an amount (core.pricing)
        RequestInvalid          an API request body or parameter (field -> problem)
      AccountError              users and sign-in
      CatalogError              models, prices, the exchange rate
      LedgerError               postings and balances
      PaymentError              top-ups and the payment provider
      UsageError                usage events
        Conflict                an idempotency key reused for another payload
        UsageRejected           an event stored as rejected (and its reasons)
      Unavailable               a backing service cannot serve now
      GatewayError              the metering gateway (core.holds, core.gateway)
      ChatError                 chat with Dify apps (core.dify)
        ChatNotFound            an app, conversation or turn the user cannot see

Invariants:
    * Every error carries ``message`` (for people: shown on forms, printed by
      the CLI, sent in API bodies) and ``details`` (keyword arguments; a
      ``field`` detail names the form field it concerns).
    * ``code`` is a stable machine-readable string, one code per meaning.
      Each code has exactly one HTTP status, in ``blueprints.errors.ERROR_STATUS``;
      a test fails if a subclass's code is missing there.
    * Errors defined elsewhere (``core.stripe_gateway``, ``core.topup_ledger``,
      ``blueprints.rate_limits``, ``blueprints.main.csv_export``) subclass the
      area roots here, so the CLI and the API can catch ``DomainError`` alone.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Raised when a rule of the domain refuses an operation."""

    code = "invalid_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


# --- validation ----------------------------------------------------------------


class ValidationError(DomainError):
    """Raised when input can never be valid (bad number, empty reason, ...)."""

    code = "invalid_request"


class AmountError(ValidationError, ValueError):
    """Raised when a decimal string cannot be an amount of its unit (credits, USD, rate)."""


class RequestInvalid(ValidationError):
    """Raised when an API request body or parameter can never be valid.

    ``fields`` maps a field name to its problem; it is sent as
    ``details.fields`` when there is one.
    """

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        self.fields = fields or {}
        super().__init__(message, **({"fields": self.fields} if self.fields else {}))


# --- accounts --------------------------------------------------------------------


class AccountError(DomainError):
    """Raised when an operation on a user account is refused."""


class EmailTaken(AccountError):
    """Raised when signing up or creating a user with an email already in use."""

    code = "email_taken"


class UnknownUser(AccountError):
    """Raised when no user has the email or id given."""

    code = "unknown_user"


class LinkInvalid(AccountError):
    """Raised when an invitation or password-reset link is unknown, used or expired."""

    code = "link_invalid"


class RegistrationClosed(AccountError):
    """Raised when someone signs up while registration is closed or by invitation only."""

    code = "registration_closed"


# --- email and webhooks ----------------------------------------------------------


class DeliveryError(DomainError):
    """Raised when an email or webhook event could not be delivered (it is retried)."""

    code = "delivery_failed"


class WebhookRefused(DeliveryError):
    """Raised when the webhook receiver answers with a status other than 2xx."""


# --- catalog ---------------------------------------------------------------------


class CatalogError(DomainError):
    """Raised when a change to models, prices or the exchange rate is refused."""


class ModelExists(CatalogError):
    """Raised when creating a model under a name that is already taken."""

    code = "model_exists"


# --- ledger ----------------------------------------------------------------------


class LedgerError(DomainError):
    """Raised when a posting to the ledger is refused."""


class BalanceLimit(LedgerError):
    """Raised when a posting would take a balance past the ceiling of core.bounds."""

    code = "limit_exceeded"


# --- payments --------------------------------------------------------------------


class PaymentError(DomainError):
    """Raised when a top-up or a call to the payment provider is refused."""


# --- usage -----------------------------------------------------------------------


class UsageError(DomainError):
    """Raised when a usage event is refused or cannot be recorded as sent."""


class Conflict(UsageError):
    """Raised when the same idempotency key was used for a different payload."""

    code = "conflict"


class KeyRevoked(UsageError):
    """Raised when a request's integration key was revoked after it
    authenticated (found in the request's own write transaction)."""

    code = "unauthorized"


class UsageRejected(UsageError):
    """Raised when a usage event was recorded as rejected and not charged.

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
    """Raised when the balance (plus overdraft) cannot pay for an event."""

    code = "insufficient_credits"


class UnknownModel(UsageRejected):
    """Raised when an event names a model that is not in the catalog."""

    code = "unknown_model"


class ModelDisabled(UsageRejected):
    """Raised when an event names a model an admin has disabled."""

    code = "model_disabled"


class LimitExceeded(UsageRejected):
    """Raised when an event exceeds a per-event cap or the balance ceiling."""

    code = "limit_exceeded"


class UnknownUsageUser(UsageRejected):
    """Raised when an event names a user email that has no account."""

    code = "unknown_user"


class UserDisabled(UsageRejected):
    """Raised when an event names a user whose account is disabled."""

    code = "user_disabled"


# --- availability ----------------------------------------------------------------


class Unavailable(DomainError):
    """Raised when a backing service cannot serve the request now; retrying may work."""

    code = "unavailable"


class PasswordHashingBusy(Unavailable):
    """Raised when a password check waited too long for a free hashing slot."""

    code = "busy"


# --- the metering gateway (core.holds, core.gateway) ---------------------------------


class GatewayError(DomainError):
    """Raised when the gateway refuses a call or cannot complete it."""


class Unauthenticated(GatewayError):
    """Raised when a call carries no key, or one that is unknown, revoked or expired."""

    code = "unauthorized"


class RateLimited(GatewayError):
    """Raised when a key has made more calls than its rate limit allows."""

    code = "rate_limited"


class KeyLimitReached(GatewayError):
    """Raised when a hold would take a key's spent + reserved credits past its limit."""

    code = "key_limit_reached"


class ConcurrencyLimited(GatewayError):
    """Raised when a user already has as many calls running as allowed."""

    code = "concurrency_limited"


class RequestTooLarge(GatewayError):
    """Raised when a call's body is larger than ``GATEWAY_MAX_BODY_BYTES``."""

    code = "request_too_large"


class UpstreamFailed(GatewayError):
    """Raised when the upstream gave no answer that can be relayed."""

    code = "upstream_error"


class UpstreamUnreachable(UpstreamFailed):
    """Raised when the upstream cannot be connected to or broke the connection."""


class UpstreamTimeout(UpstreamFailed):
    """Raised when the upstream did not answer within a timeout or the deadline."""

    code = "upstream_timeout"


class UpstreamRefused(UpstreamFailed):
    """Raised when the upstream answered non-2xx before any body.

    ``status`` is the upstream's status and ``error`` its error object, with
    the upstream's address and secret removed from every string in it.
    """

    def __init__(self, status: int, error: dict[str, Any], retry_after: str | None) -> None:
        super().__init__(str(error.get("message") or f"The upstream answered {status}."))
        self.status = status
        self.error = error
        self.retry_after = retry_after


class SecretUnreadable(UpstreamFailed):
    """Raised when a stored upstream secret cannot be decrypted with any configured key."""


# --- chat with Dify apps (core.dify) ----------------------------------------------------


class ChatError(DomainError):
    """Raised when a chat with a Dify app cannot go on."""


class ChatNotFound(ChatError):
    """Raised when an app is not enabled, or a conversation or turn is not the user's own
    (one answer for both, so ids cannot be probed)."""

    code = "not_found"


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
