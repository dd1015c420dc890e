"""The user's own settings: low-balance threshold, time zone, password and
API keys.

Changing the password ends every session of the user (another device, a
stolen cookie) and signs this one back in with the new session generation.

A new API key is shown once, on the page that answers its creation; only its
prefix is shown afterwards. Revoking one asks for confirmation on a page of
its own (no ``confirm()``: the CSP allows no inline script).
"""

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from blueprints.access import current_actor, login_required
from blueprints.auth.sessions import start_session
from blueprints.db_session import read_session
from blueprints.extensions import database, passwords
from blueprints.main import bp
from blueprints.main.forms import (
    ConfirmForm,
    PasswordForm,
    ThresholdForm,
    TimeZoneForm,
    UserKeyForm,
)
from core import accounts, time_zones, user_keys
from core.errors import DomainError, PasswordHashingBusy


def _render(
    threshold_form: ThresholdForm | None = None,
    password_form: PasswordForm | None = None,
    zone_form: TimeZoneForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The settings page; forms not given are blank (their data not re-read)."""
    html = render_template(
        "main/settings.html",
        threshold_form=threshold_form or ThresholdForm(formdata=None),
        password_form=password_form or PasswordForm(formdata=None),
        zone_form=zone_form or TimeZoneForm(formdata=None, time_zone=current_user.time_zone),
        zone_names=time_zones.names(),
    )
    return html, status


@bp.get("/settings")
@login_required
def settings() -> tuple[str, int]:
    """The user's settings page: low-balance alert, time zone and password forms."""
    return _render()


@bp.post("/settings/time-zone")
@login_required
def save_time_zone() -> Response | tuple[str, int]:
    """Save the zone the user's pages show times in."""
    form = TimeZoneForm()
    if form.validate_on_submit():
        try:
            with database().write() as s:
                name = time_zones.set_time_zone(s, current_user.id, form.time_zone.data)
        except DomainError as exc:
            form.time_zone.errors.append(exc.message)
        else:
            flash(f"Time zone saved: times are shown in {name}.", "success")
            return redirect(url_for("main.settings"))
    return _render(zone_form=form, status=400)


@bp.post("/settings/threshold")
@login_required
def save_threshold() -> Response | tuple[str, int]:
    """Save the user's low-balance alert threshold."""
    form = ThresholdForm()
    if not form.validate_on_submit():
        return _render(threshold_form=form, status=400)
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
    return _render(password_form=form, status=status)


@bp.route("/settings/api-keys", methods=["GET", "POST"])
@login_required
def api_keys() -> tuple[str, int]:
    """My API keys for the gateway, and the form that creates one (shown once)."""
    form, created_key = UserKeyForm(), None
    if form.validate_on_submit():
        try:
            with database().write() as s:
                _, created_key = user_keys.create(
                    s,
                    current_actor(),
                    current_user.id,
                    form.name.data,
                    limit_ucr=form.limit_ucr,
                    expires_at=form.expires_at,
                )
        except DomainError as exc:
            fields = {"limit": form.limit, "expires": form.expires}
            fields.get(exc.details.get("field", ""), form.name).errors.append(exc.message)
        else:
            form = UserKeyForm(formdata=None)
    rows = user_keys.keys_of(read_session(), current_user.id)
    html = render_template("main/api_keys.html", form=form, keys=rows, created_key=created_key)
    return html, 400 if form.errors else 200


@bp.route("/settings/api-keys/<int:key_id>/revoke", methods=["GET", "POST"])
@login_required
def revoke_api_key(key_id: int) -> Response | str:
    """Confirm, then revoke one of my API keys."""
    key = next(
        (k for k in user_keys.keys_of(read_session(), current_user.id) if k.id == key_id), None
    )
    if key is None or key.revoked_at is not None:
        abort(404)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return render_template("main/api_key_revoke.html", form=form, key=key)
    with database().write() as s:
        user_keys.revoke(s, current_actor(), key_id, owner_id=current_user.id)
    flash(f"Key {key.prefix}… ({key.name}) revoked.", "success")
    return redirect(url_for("main.api_keys"))
