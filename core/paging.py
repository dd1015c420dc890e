"""Keyset pagination: newest first by id, ``id < cursor`` for the next page.

Page 1,000 costs what page 1 does (no OFFSET scan) and rows inserted while a
reader pages through never shift or repeat what they see.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session


def keyset_page(
    session: Session,
    query: Select,
    id_column: InstrumentedAttribute[int],
    before_id: int | None,
    size: int,
) -> tuple[list[Any], int | None]:
    """One page of ``query`` and the cursor for the next page (None at the end)."""
    if before_id is not None:
        query = query.where(id_column < before_id)
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].id if more and rows else None)
