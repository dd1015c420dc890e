"""Query-string arguments of list pages, parsed at the edge.

``parse_filters`` reads the usage pages' date and model filters;
``parse_cursor`` reads the ``?before=`` keyset cursor that the usage, audit
and payment-anomaly pages share. Bad values are reported or ignored here,
so core functions only ever see typed, bounded values. (Not ``filters.py``:
that reads as Jinja template filters, which live in ``template_filters``.)
"""

from __future__ import annotations

from datetime import date

from werkzeug.datastructures import MultiDict

from core.usage import Filters


def parse_filters(args: MultiDict[str, str]) -> tuple[Filters, list[str]]:
    """Filters from ?since=YYYY-MM-DD&until=…&model=…; bad values are reported, not used."""
    errors: list[str] = []

    def day(name: str) -> date | None:
        raw = args.get(name, "").strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            errors.append(f"'{raw[:40]}' is not a date like 2026-11-24.")
            return None

    since, until = day("since"), day("until")
    if since and until and since > until:
        errors.append("The start date is after the end date.")
        since = until = None
    model = args.get("model", "").strip()[:100] or None
    return Filters(since, until, model), errors


def parse_cursor(args: MultiDict[str, str]) -> int | None:
    """The ``before`` id of a keyset page, or None (the first page) if absent or bad."""
    raw = args.get("before", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None
