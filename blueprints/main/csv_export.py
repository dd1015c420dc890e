"""The usage CSV, produced row by row so a million events stream in flat memory.

An export either arrives whole or visibly fails; it is never silently short:

* It is refused up front (``ExportTooLarge``) when more than
  ``CSV_EXPORT_MAX_ROWS`` events match (default 1,000,000, about half a
  minute of streaming), with a request to narrow the dates.
* The rows are counted first and streamed from the same snapshot (one read
  transaction; REPEATABLE READ on PostgreSQL), and the count is sent before
  them in the ``X-Row-Count`` header, so a client can check what it received.
* The body has no Content-Length: served over HTTP/1.1 it is sent with
  chunked transfer encoding, whose last chunk only a complete export gets,
  so every HTTP client reports a cut (a worker killed, the database lost
  mid-export) as an error instead of a shorter file.

The CSV itself is plain data: one header line, then one line per event,
newest first, with no trailer.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core import usage
from core.db import Database
from core.enums import CHARGED_STATUSES
from core.errors import ValidationError
from core.pricing import format_credits

HEADER = (
    "time_utc",
    "event_id",
    "model",
    "input_tokens",
    "output_tokens",
    "credits_charged",
    "status",
    "reason",
    "conversation_id",
    "source",
)


class ExportTooLarge(ValidationError):
    """Raised when more events match an export than ``CSV_EXPORT_MAX_ROWS``."""


@dataclass(frozen=True)
class UsageExport:
    rows: int  # data lines the CSV will have
    lines: Iterator[str]
    close: Callable[[], None]  # ends the read transaction; call when the response closes


def _safe(text: str | None) -> str:
    # Spreadsheet formula injection: a cell starting with = + - @ is data here.
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def open_usage_export(
    db: Database, user_id: int, filters: usage.Filters, max_rows: int
) -> UsageExport:
    """Count the matching events (refusing more than ``max_rows``), then
    stream them from the same snapshot."""
    session = db.read_session()
    try:
        if not db.is_sqlite:
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        rows = usage.count_history(session, user_id, filters, at_most=max_rows + 1)
    except BaseException:
        session.close()
        raise
    if rows > max_rows:
        session.close()
        raise ExportTooLarge(
            f"This export would have more than {max_rows:,} rows, the most one file may hold. "
            "Choose a shorter period (From and To) and download it in parts.",
            max_rows=max_rows,
        )
    return UsageExport(rows, _lines(session, user_id, filters), session.close)


def _lines(session: Session, user_id: int, filters: usage.Filters) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    try:
        writer.writerow(HEADER)
        yield flush()
        for n, event in enumerate(usage.history_stream(session, user_id, filters), 1):
            writer.writerow(
                (
                    event.received_at.isoformat(timespec="seconds") + "Z",
                    _safe(event.event_id),
                    _safe(event.model_name),
                    event.input_tokens,
                    event.output_tokens,
                    format_credits(event.cost_ucr or 0)
                    if event.status in CHARGED_STATUSES
                    else "0",
                    event.status,
                    _safe(event.reason),
                    _safe(event.conversation_id),
                    _safe(event.source),
                )
            )
            if n % 500 == 0:
                yield flush()
        yield flush()
    finally:
        session.close()
