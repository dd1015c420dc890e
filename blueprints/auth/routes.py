from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import login_user, logout_user
from werkzeug.wrappers import Response

from blueprints.auth import bp
from blueprints.auth.forms import LoginForm, RegisterForm
from blueprints.auth.safe_next import safe_next
from blueprints.extensions import database, limiter, passwords
from core import accounts
from core.errors import DomainError
from core.models import User


def _email_key() -> str:
    return "login-email:" + accounts.normalise_email(request.form.get("email", ""))


def _ip_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_IP"]


def _email_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_EMAIL"]


def _start_session(user: User) -> None:
    # A fresh session at login: nothing planted before sign-in survives it.
    session.clear()
    login_user(user)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_email_limit, methods=["POST"], key_func=_email_key)
def login() -> str | Response:
    form = LoginForm()
    if form.validate_on_submit():
        with database().write() as s:
            user = accounts.authenticate(s, form.email.data, form.password.data, passwords())
            if user is not None:
                _start_session(user)
        if user is not None:
            return redirect(safe_next(request.args.get("next"), url_for("main.index")))
        form.password.errors.append("Wrong email or password, or the account is disabled.")
    return render_template("auth/login.html", form=form)


@bp.route("/register", methods=["GET", "POST"])
def register() -> str | Response:
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            with database().write() as s:
                user = accounts.create_user(s, form.email.data, form.password.data, passwords())
        except DomainError as exc:
            form.email.errors.append(exc.message)
        else:
            _start_session(user)
            flash("Welcome to Creditline.", "success")
            return redirect(url_for("main.index"))
    return render_template("auth/register.html", form=form)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> str | Response:
    # Signing out changes state, so it takes a POST with a CSRF token; a plain
    # GET (a link, or a cross-site image) only shows the confirmation button.
    if request.method == "GET":
        return render_template("auth/logout.html")
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
