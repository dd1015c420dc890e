"""The user's own settings: low-balance threshold and password.

Changing the password ends every session of the user (another device, a
stolen cookie) and signs this one back in with the new session generation.
"""

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from blueprints.access import login_required
from blueprints.auth.sessions import start_session
from blueprints.extensions import database, passwords
from blueprints.main import bp
from blueprints.main.forms import PasswordForm, ThresholdForm
from core import accounts
from core.errors import DomainError, PasswordHashingBusy


def _render(threshold_form: ThresholdForm, password_form: PasswordForm, status: int = 200):
    html = render_template(
        "main/settings.html", threshold_form=threshold_form, password_form=password_form
    )
    return html, status


@bp.get("/settings")
@login_required
def settings() -> tuple[str, int]:
    """The user's settings page: low-balance alert and password forms."""
    return _render(ThresholdForm(), PasswordForm())


@bp.post("/settings/threshold")
@login_required
def save_threshold() -> Response | tuple[str, int]:
    """Save the user's low-balance alert threshold."""
    form = ThresholdForm()
    if not form.validate_on_submit():
        return _render(form, PasswordForm(formdata=None), 400)
    with database().write() as s:
        accounts.set_low_balance_threshold(s, current_user.id, form.threshold_ucr)
    flash("Low-balance alert saved.", "success")
    return redirect(url_for("main.settings"))


@bp.post("/settings/password")
@login_required
def change_password() -> Response | tuple[str, int]:
    """Change the password; ends the user's other sessions."""
    form = PasswordForm()
    status = 400
    if form.validate_on_submit():
        try:
            user = accounts.change_password(
                database(), current_user.id, form.current.data, form.new.data, passwords()
            )
        except DomainError as exc:
            form.current.errors.append(exc.message)
            status = 503 if isinstance(exc, PasswordHashingBusy) else 400
        else:
            start_session(user)
            flash("Password changed. You were signed out everywhere else.", "success")
            return redirect(url_for("main.settings"))
    return _render(ThresholdForm(formdata=None), form, status)
