"""Admin: invitation links, password-reset links, the email and webhook delivery log."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from blueprints.access import current_actor
from blueprints.admin import bp
from blueprints.admin.forms import ReasonForm
from blueprints.db_session import read_session
from blueprints.extensions import database
from core import accounts, outbox_admin, signup
from core.errors import DomainError


def _link_page(title: str, link: str, note: str) -> str:
    return render_template("admin/link_issued.html", title=title, link=link, note=note)


@bp.post("/invitations")
def create_invitation() -> str | tuple[str, int]:
    """A one-time sign-up link, shown once."""
    form = ReasonForm(prefix="invite")
    if not form.validate_on_submit():
        return render_template("admin/link_issued.html", form_errors=form.errors), 400
    with database().write() as s:
        token = signup.create_invitation(s, current_actor(), form.reason.data)
    link = url_for("auth.register", invite=token, _external=True)
    return _link_page("Invitation link", link, f"It works once, for {signup.INVITE_TTL.days} days.")


@bp.post("/users/<int:user_id>/reset-link")
def issue_reset_link(user_id: int) -> str | tuple[str, int]:
    """A one-time password-reset link for a user: shown here, and emailed."""
    accounts.find_user_by_id(read_session(), user_id) or abort(404)
    form = ReasonForm(prefix="reset")
    if not form.validate_on_submit():
        return render_template("admin/link_issued.html", form_errors=form.errors), 400
    with database().write() as s:
        link = signup.issue_reset(
            s,
            current_actor(),
            user_id,
            form.reason.data,
            lambda token: url_for("auth.reset_password", token=token, _external=True),
        )
    return _link_page(
        "Password-reset link",
        link,
        "It works once, for 24 hours. It is also emailed to the user when mail is configured.",
    )


@bp.get("/webhooks")
def deliveries() -> str:
    """The delivery log of emails and webhook events."""
    return render_template(
        "admin/deliveries.html",
        rows=outbox_admin.recent(read_session()),
        retryable=outbox_admin.RETRYABLE,
        form=ReasonForm(formdata=None, prefix="retry"),
    )


@bp.post("/outbox/<int:message_id>/retry")
def retry_delivery(message_id: int) -> Response | tuple[str, int]:
    """Deliver a row again now, with a reason."""
    form = ReasonForm(prefix="retry")
    if form.validate_on_submit():
        try:
            with database().write() as s:
                outbox_admin.retry(s, current_actor(), message_id, form.reason.data)
        except DomainError as exc:
            flash(exc.message, "error")
        else:
            flash("Queued for delivery.", "success")
        return redirect(url_for("admin.deliveries"))
    flash("Give a reason for the retry.", "error")
    return redirect(url_for("admin.deliveries"))
