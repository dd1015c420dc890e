"""The usage CSV, produced row by row so a million events stream in flat memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from core import usage
from core.db import Database
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
)


def _safe(text: str | None) -> str:
    # Spreadsheet formula injection: a cell starting with = + - @ is data here.
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def usage_csv_lines(db: Database, user_id: int, filters: usage.Filters) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(HEADER)
    yield flush()
    with db.read_session() as session:
        for n, event in enumerate(usage.history_stream(session, user_id, filters), 1):
            writer.writerow(
                (
                    event.received_at.isoformat(timespec="seconds") + "Z",
                    _safe(event.event_id),
                    _safe(event.model_name),
                    event.input_tokens,
                    event.output_tokens,
                    format_credits(event.cost_ucr or 0) if event.status == "charged" else "0",
                    event.status,
                    _safe(event.reason),
                    _safe(event.conversation_id),
                )
            )
            if n % 500 == 0:
                yield flush()
    yield flush()
