"""One-time links: sign-up by invitation, "forgot password", password reset.

"Forgot password" exists only when mail is configured (``MAIL_URL``); its
answer is the same whether or not the address has an account, and requests
are limited per client IP (``FORGOT_RATE_LIMIT``).
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from blueprints.auth import bp
from blueprints.auth.forms import ForgotForm, ResetForm
from blueprints.db_session import read_session
from blueprints.extensions import database, passwords
from blueprints.rate_limits import rate_limits
from core import signup
from core.errors import DomainError, LinkInvalid, PasswordHashingBusy


def signup_refusal(invite: str | None) -> str | None:
    """Why the sign-up page is refused now, or None when it is open to this visitor."""
    mode = signup.registration_mode(read_session())
    if mode == "closed":
        return "Sign-up is closed. Ask an administrator for an account."
    if mode == "invite":
        if not invite:
            return "Sign-up is by invitation only. Ask an administrator for an invitation link."
        try:
            signup.check_link(database(), "invite", invite)
        except LinkInvalid as exc:
            return exc.message
    return None


def _link(token: str) -> str:
    return url_for("auth.reset_password", token=token, _external=True)


@bp.route("/forgot", methods=["GET", "POST"])
def forgot_password() -> str | Response | tuple[str, int]:
    """Ask for a reset link by email (never says whether the address exists)."""
    if not current_app.config["MAIL_URL"]:
        abort(404)
    form = ForgotForm()
    if form.validate_on_submit():
        verdict = rate_limits().hit(
            current_app.config["FORGOT_RATE_LIMIT"], "forgot-ip", request.remote_addr or ""
        )
        if not verdict.allowed:
            form.email.errors.append("Too many requests from your network. Try again later.")
            return render_template("auth/forgot.html", form=form), 429
        signup.request_reset(database(), form.email.data, _link)
        flash("If an account uses this address, we sent it a link to reset the password.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> str | Response | tuple[str, int]:
    """Choose a new password through a one-time link."""
    token = token[:100]
    try:
        signup.check_link(database(), "reset", token)
    except LinkInvalid as exc:
        return render_template("auth/register_closed.html", message=exc.message), 400
    form = ResetForm()
    if form.validate_on_submit():
        try:
            signup.reset_password(database(), token, form.password.data, passwords())
        except PasswordHashingBusy as exc:
            form.password.errors.append(exc.message)
            return render_template("auth/reset.html", form=form), 503
        except DomainError as exc:
            form.password.errors.append(exc.message)
            return render_template("auth/reset.html", form=form), 400
        flash("Your password was changed. Sign in with the new one.", "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form), 400 if form.errors else 200
