"""Usage reports: one event as an integration reports it, and its outcome.

Plain values, no database: ``core.usage_debits`` charges them and
``core.usage_writes`` decides and writes each one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_str

from core.accounts import normalise_email
from core.enums import UsageStatus
from core.errors import DomainError


@dataclass(frozen=True)
class UsageReport:
    """One usage event as an integration reports it (already type-checked)."""

    event_id: str
    user: str
    model: str
    input_tokens: int
    output_tokens: int
    conversation_id: str | None = None
    occurred_at: datetime | None = None

    def payload_hash(self) -> str:
        """What makes two reports with one event id "the same payload".

        The SHA-256 of the compact JSON array ``[user, model, input tokens,
        output tokens, conversation id, occurred at]``, built with the json
        module's own string encoder: byte for byte ``json.dumps(...,
        separators=(",", ":"))`` without its per-call overhead, which showed
        in batch ingest. Stored hashes depend on this exact text.
        """
        occurred = self.occurred_at.isoformat() if self.occurred_at else None
        conversation = self.conversation_id
        canonical = (
            f"[{_json_str(normalise_email(self.user))},{_json_str(self.model)},"
            f"{self.input_tokens:d},{self.output_tokens:d},"
            f"{'null' if conversation is None else _json_str(conversation)},"
            f"{'null' if occurred is None else _json_str(occurred)}]"
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class UsageResult:
    """The outcome for one event: charged, or rejected with ``error`` set."""

    event_id: str
    status: UsageStatus
    duplicate: bool
    cost_ucr: int
    balance_ucr: int | None
    error: DomainError | None = None


@dataclass(frozen=True)
class PreparedReport:
    """A report with what needs no database: its normalised email and hash.

    Prepared before the write transaction begins, so the write lock is held
    for as little Python as possible.
    """

    report: UsageReport
    email: str
    payload_hash: str


def prepare(reports: Sequence[UsageReport]) -> list[PreparedReport]:
    return [PreparedReport(r, normalise_email(r.user), r.payload_hash()) for r in reports]
