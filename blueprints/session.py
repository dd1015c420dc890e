"""The request's read session: opened on first use, closed at teardown.

Writes never go through it; they use ``database().write()`` so each write is
its own short ``BEGIN IMMEDIATE`` transaction.
"""

from flask import Flask, g
from sqlalchemy.orm import Session

from blueprints.extensions import database


def read_session() -> Session:
    if "read_session" not in g:
        g.read_session = database().read_session()
    return g.read_session


def init_app(app: Flask) -> None:
    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("read_session", None)
        if session is not None:
            session.close()
