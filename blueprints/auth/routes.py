from flask import flash, redirect, render_template, request, session, url_for
from flask_login import login_user, logout_user
from werkzeug.wrappers import Response

from blueprints.auth import bp
from blueprints.auth.forms import LoginForm, RegisterForm
from blueprints.auth.safe_next import safe_next
from blueprints.extensions import database, passwords
from blueprints.rate_limits import login_limited
from core import accounts
from core.errors import DomainError
from core.models import User


def _start_session(user: User) -> None:
    # A fresh session at login: nothing planted before sign-in survives it.
    session.clear()
    login_user(user)


@bp.route("/login", methods=["GET", "POST"])
@login_limited
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
