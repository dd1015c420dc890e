"""Access control decorators. Admin pages are also guarded blueprint-wide
(see ``blueprints.admin``), so a forgotten decorator still denies."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, request
from flask_login import current_user, login_required

from core.audit import Actor

__all__ = ["admin_required", "current_actor", "login_required", "require_admin"]


def require_admin() -> Any:
    """Anonymous -> the login manager's answer (a redirect to the login page,
    or for htmx a client redirect: ``blueprints.auth.sessions``); signed-in
    non-admin -> 403; admin -> None."""
    from blueprints.extensions import login_manager

    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403)
    return None


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        denied = require_admin()
        return denied if denied is not None else view(*args, **kwargs)

    return wrapped


def current_actor() -> Actor:
    """The signed-in user as an audit actor (id, email, client IP)."""
    return Actor(current_user.email, current_user.id, request.remote_addr)
