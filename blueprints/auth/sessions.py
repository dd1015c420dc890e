"""Sign-in sessions: which cookie is a signed-in user, and what a signed-out
request gets.

A session names its user as ``"<id>:<session generation>"`` (``User.get_id``;
Flask-Login stores it in the session and in a "remember me" cookie alike).
``load_user`` accepts it only while the user is active and the generation is
still the user's current one, so raising the generation
(``core.accounts.end_sessions``: sign-out, password change, role or access
change) ends every copy of every session of that user, including copies an
attacker saved. A session from before generations existed (a bare id) is
refused: signing in once more is the whole cost.

Signed-out requests: a normal page request is redirected to the login page
with ``next``. An htmx request (``HX-Request: true``, such as the balance
badge polling every few seconds) must not get that redirect: htmx would
follow it and swap the whole login page into the badge. It gets ``204`` with
``HX-Redirect: /auth/login?next=<the page the browser shows>`` instead (what
django-htmx's ``HttpResponseClientRedirect`` does), and htmx navigates the
whole window. This is the login manager's unauthorized handler, so every
login-required endpoint, the admin pages included, behaves this way.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, flash, redirect, request, session
from flask_login import login_url, login_user
from werkzeug.wrappers import Response

from blueprints.auth.safe_next import is_local_path
from blueprints.db_session import read_session
from blueprints.extensions import login_manager
from core import accounts
from core.models import User

_SESSION_ID = re.compile(r"([0-9]{1,18}):([0-9]{1,18})")
LOGIN_VIEW = "auth.login"


def load_user(session_id: str) -> User | None:
    """The user of a session id, if that session has not been ended."""
    match = _SESSION_ID.fullmatch(session_id)
    if match is None:
        return None
    user = accounts.find_user_by_id(read_session(), int(match.group(1)))
    if user is None or not user.is_active:
        return None
    return user if user.session_generation == int(match.group(2)) else None


def start_session(user: User) -> None:
    """Sign ``user`` in on a fresh session: nothing planted before sign-in
    survives it, and the session carries the user's current generation."""
    session.clear()
    login_user(user)


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _page_shown() -> str | None:
    """The page the browser shows (htmx sends it as ``HX-Current-URL``), as a
    local path, or None when it is missing or not on this site."""
    parts = urlsplit(request.headers.get("HX-Current-URL", ""))
    if parts.netloc and parts.netloc != request.host:
        return None
    target = urlunsplit(("", "", parts.path, parts.query, ""))
    return target if is_local_path(target) else None


def unauthorized() -> Response:
    """A login-required endpoint was asked for without a live session."""
    flash(login_manager.login_message, login_manager.login_message_category)
    if is_htmx():
        response = Response(status=204)
        response.headers["HX-Redirect"] = login_url(LOGIN_VIEW, next_url=_page_shown())
        return response
    return redirect(login_url(LOGIN_VIEW, next_url=request.url))


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = LOGIN_VIEW
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(unauthorized)
