"""Consistent copies of a live SQLite database (``flask backup PATH``).

A plain file copy of a database in WAL mode can miss committed transactions
still in the ``-wal`` file, or catch a page mid-write. SQLite's online backup
API copies a consistent snapshot while other connections keep writing: it
restarts by itself when a writer changes a page it had already copied. The
copy is written to a temporary file beside the target (readable by its owner
only) and renamed into place only once complete, so a crash never leaves a
half-written backup under the final name. PostgreSQL is backed up with its own tools (``pg_dump``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from core.db import Database
from core.errors import ValidationError


def sqlite_path(db: Database) -> Path:
    """The database file behind ``db``; refuses anything but a SQLite file."""
    url = make_url(db.url)
    if not db.is_sqlite:
        raise ValidationError(
            "flask backup copies SQLite databases; back up PostgreSQL with pg_dump."
        )
    if not url.database or url.database == ":memory:":
        raise ValidationError("This database has no file to back up.")
    return Path(url.database)


def backup_sqlite(db: Database, target: str | os.PathLike[str]) -> Path:
    """Copy the live database to ``target`` (which must not exist) and check the copy."""
    source = sqlite_path(db)
    final = Path(target)
    if final.exists():
        raise ValidationError(f"{final} exists; give a new file name.")
    if not final.parent.is_dir():
        raise ValidationError(f"{final.parent} is not a directory.")
    partial = final.with_name(final.name + ".partial")
    partial.unlink(missing_ok=True)
    # Owner-only from the first byte: the copy holds password hashes and
    # sealed secrets, whatever the umask of the cron job that runs this.
    partial.touch(mode=0o600, exist_ok=False)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=1024)
            dst.execute("PRAGMA journal_mode=DELETE")
            verdict = dst.execute("PRAGMA integrity_check").fetchone()
        finally:
            dst.close()
    finally:
        src.close()
    if verdict is None or verdict[0] != "ok":
        partial.unlink(missing_ok=True)
        raise ValidationError(f"The copy failed SQLite's integrity check: {verdict!r}.")
    os.replace(partial, final)
    return final
