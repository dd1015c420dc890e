"""What a request reads through: its read session and the price book it sees.

``read_session()`` is opened on first use and closed at teardown, like
flaskr's ``get_db()``. Writes never go through it; they use
``database().write()`` so each write is its own short ``BEGIN IMMEDIATE``
transaction, and when one commits the read snapshot is ended so the rest of
the request reads what it wrote.

``price_book()`` is the rate, model prices and settings as of that read
session (``core.pricebook``: one ``SELECT version`` when nothing changed).
Views call it instead of pairing the cache and the session themselves.

Named ``db_session`` rather than ``session``: Flask's ``session`` is the
signed cookie, which this module has nothing to do with.
"""

from flask import Flask, g, has_app_context
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from blueprints.extensions import database, prices
from core.pricebook import PriceBook


def read_session() -> Session:
    """This request's read session, opened on first use."""
    if "read_session" not in g:
        g.read_session = database().read_session()
    return g.read_session


def price_book() -> PriceBook:
    """The price book as of this request's read session."""
    return prices().get(read_session())


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
            try:
                session.close()
            except DBAPIError:  # the server went away: drop the connection, not the response
                session.invalidate()
