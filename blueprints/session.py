"""The request's read session: opened on first use, closed at teardown.

Writes never go through it; they use ``database().write()`` so each write is
its own short ``BEGIN IMMEDIATE`` transaction.
"""

from flask import Flask, g, has_app_context
from sqlalchemy.orm import Session

from blueprints.extensions import database


def read_session() -> Session:
    if "read_session" not in g:
        g.read_session = database().read_session()
    return g.read_session


def _end_read_snapshot() -> None:
    """After a write commits, later reads in this request must see it."""
    if has_app_context():
        session = g.get("read_session")
        if session is not None:
            session.rollback()


def init_app(app: Flask) -> None:
    app.extensions["creditline.db"].on_write_committed(_end_read_snapshot)

    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("read_session", None)
        if session is not None:
            session.close()
