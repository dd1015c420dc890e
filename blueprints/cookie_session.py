"""Flask's signed-cookie session, skipped for the API.

API clients authenticate with bearer keys and never carry a session cookie;
decoding (and re-signing) one on every usage report was measurable on the
ingest hot path. API requests get Flask's null session instead, which is
empty and refuses writes, so nothing can start depending on it by accident.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from blueprints.errors import is_api_path


class CookieSessions(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if is_api_path(request.path):
            return self.null_session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.session_interface = CookieSessions()
