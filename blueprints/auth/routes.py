"""Sign-up, sign-in and sign-out pages.

Sign-ups are limited per client IP (``REGISTER_RATE_LIMIT``, e.g. 5/hour):
each costs an argon2 hash and an account. A submission counts once the form
and the address are well-formed (fixing a typo is free); one for an address
that already has an account counts too, so the form cannot test addresses
in bulk. An over-limit one gets the form back with status 429,
``Retry-After`` and a message, and nothing is created or hashed. Password
checks that found the hashing queue full answer 503 with the form and a
message (``core.passwords``).
"""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user
from werkzeug.wrappers import Response

from blueprints.auth import bp
from blueprints.auth.forms import LoginForm, RegisterForm
from blueprints.auth.link_routes import signup_refusal
from blueprints.auth.safe_next import safe_next
from blueprints.auth.sessions import start_session
from blueprints.extensions import database, passwords
from blueprints.rate_limits import login_limited, rate_limits
from core import accounts, signup
from core.errors import DomainError, LinkInvalid, PasswordHashingBusy, RegistrationClosed

BUSY_RETRY_SECONDS = 5

Page = str | Response | tuple[str, int, dict[str, str]]


def _refused(template: str, status: int, retry_after: int, **context: object) -> Page:
    html = render_template(template, **context)
    return html, status, {"Retry-After": str(retry_after)}


def _minutes(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


@bp.route("/login", methods=["GET", "POST"])
@login_limited
def login() -> Page:
    """The sign-in form; signs the user in on a fresh session."""
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(
                database(), form.email.data, form.password.data, passwords()
            )
        except PasswordHashingBusy as exc:
            form.password.errors.append(exc.message)
            return _refused("auth/login.html", 503, BUSY_RETRY_SECONDS, form=form)
        if user is not None:
            start_session(user)
            return redirect(safe_next(request.args.get("next"), url_for("main.index")))
        form.password.errors.append("Wrong email or password, or the account is disabled.")
    return render_template(
        "auth/login.html", form=form, can_reset=bool(current_app.config["MAIL_URL"])
    )


@bp.route("/register", methods=["GET", "POST"])
def register() -> Page:
    """The sign-up form; creates the account and signs it in. Follows the
    ``registration`` setting: closed, by invitation (``?invite=``) or open."""
    form = RegisterForm()
    invite = request.args.get("invite", "")[:100] or None
    refusal = signup_refusal(invite)
    if refusal is not None:
        return render_template("auth/register_closed.html", message=refusal), 403
    if not form.validate_on_submit():
        return render_template("auth/register.html", form=form)
    try:
        accounts.check_new_account(form.email.data, form.password.data)
        verdict = rate_limits().hit(
            current_app.config["REGISTER_RATE_LIMIT"], "register-ip", request.remote_addr or ""
        )
        if not verdict.allowed:
            message = (
                "Too many accounts were created from your network recently. "
                f"Please try again in {_minutes(verdict.retry_after)}."
            )
            return _refused(
                "auth/register.html", 429, verdict.retry_after, form=form, form_error=message
            )
        user = signup.register(database(), form.email.data, form.password.data, passwords(), invite)
    except PasswordHashingBusy as exc:
        return _refused(
            "auth/register.html", 503, BUSY_RETRY_SECONDS, form=form, form_error=exc.message
        )
    except (RegistrationClosed, LinkInvalid) as exc:
        return render_template("auth/register_closed.html", message=exc.message), 403
    except DomainError as exc:
        form.email.errors.append(exc.message)
        return render_template("auth/register.html", form=form)
    start_session(user)
    flash("Welcome to Creditline.", "success")
    return redirect(url_for("main.index"))


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> str | Response:
    """Sign out (POST); a GET only shows the confirmation button."""
    # Signing out changes state, so it takes a POST with a CSRF token; a plain
    # GET (a link, or a cross-site image) only shows the confirmation button.
    if request.method == "GET":
        return render_template("auth/logout.html")
    if current_user.is_authenticated:
        # Ends this session everywhere it was copied, and the user's others.
        with database().write() as s:
            accounts.end_sessions(s, current_user.id)
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
