"""Liveness of the things the app cannot serve without: the database."""

from __future__ import annotations

import logging

from core.db import Database

log = logging.getLogger(__name__)


def database_reachable(db: Database) -> bool:
    """True when one ``SELECT 1`` round trip to the database succeeds."""
    try:
        with db.raw_read() as cur:
            return cur.scalar("SELECT 1") == 1
    except Exception:
        log.warning("health check: database unreachable", exc_info=True)
        return False
