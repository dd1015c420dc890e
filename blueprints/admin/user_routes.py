"""Users: search, balance and usage, credit adjustments, role and access, flags,
and their gateway keys (an admin may revoke one; core.user_keys audits it).

A change of role or of the disabled flag ends the user's sessions, which
cannot be undone: it asks first (blueprints/confirmation.py)."""

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from blueprints.access import current_actor
from blueprints.admin import bp
from blueprints.admin.forms import AccessForm, AdjustForm, ConfirmForm, ReasonForm, field_named
from blueprints.confirmation import ask, confirmed
from blueprints.db_session import read_session
from blueprints.extensions import database
from core import accounts, ledger, payment_anomalies, usage, user_keys
from core.errors import DomainError


@bp.get("/users")
def users() -> str:
    """Users whose email contains the search text, with their balances."""
    query = request.args.get("q", "")[:254]
    rows = accounts.search_users(read_session(), query)
    return render_template("admin/users.html", rows=rows, query=query)


def _render_user(user_id: int, status: int = 200, **forms: object) -> tuple[str, int]:
    session = read_session()
    user = accounts.find_user_by_id(session, user_id) or abort(404)
    recent = usage.recent_events(session, user.id)
    entries = ledger.recent_entries(session, user.wallet.id)
    forms.setdefault("adjust_form", AdjustForm(formdata=None, prefix="adjust"))
    forms.setdefault(
        "access_form",
        AccessForm(formdata=None, prefix="access", role=user.role, disabled=user.is_disabled),
    )
    forms.setdefault("flag_form", ReasonForm(formdata=None, prefix="flag"))
    forms.setdefault("reset_form", ReasonForm(formdata=None, prefix="reset"))
    html = render_template(
        "admin/user.html",
        user=user,
        recent=recent,
        entries=entries,
        anomalies=payment_anomalies.for_user(session, user.id),
        anomaly_codes=payment_anomalies.CODES,
        user_keys=user_keys.keys_of(session, user.id),
        key_revoke_form=ConfirmForm(),
        **forms,
    )
    return html, status


@bp.get("/users/<int:user_id>")
def user_detail(user_id: int) -> tuple[str, int]:
    """One user: balance, access, anomalies, recent usage and ledger."""
    return _render_user(user_id)


def _act(
    form_name: str, form: FlaskForm, action: Callable[[], None], user_id: int, done: str
) -> Response | tuple[str, int]:
    """Run ``action`` if the form is valid; re-render with errors otherwise."""
    if form.validate_on_submit():
        try:
            action()
        except DomainError as exc:  # on the field it concerns, if the form has it
            reason = form["reason"]
            field_named(form, exc.details.get("field"), reason).errors.append(exc.message)
        else:
            flash(done, "success")
            return redirect(url_for("admin.user_detail", user_id=user_id))
    return _render_user(user_id, 400, **{form_name: form})


@bp.post("/users/<int:user_id>/adjust")
def adjust_credits(user_id: int) -> Response | tuple[str, int]:
    """Add or remove credits from a user's balance, with a reason."""
    user = accounts.find_user_by_id(read_session(), user_id) or abort(404)
    form = AdjustForm(prefix="adjust")

    def action() -> None:
        with database().write() as s:
            ledger.adjust(s, current_actor(), user.email, form.amount_ucr, form.reason.data)

    return _act("adjust_form", form, action, user_id, "Balance adjusted.")


@bp.post("/users/<int:user_id>/access")
def set_access(user_id: int) -> Response | tuple[str, int]:
    """Change a user's role or disabled flag, with a reason; a change asks first
    (it ends the user's sessions)."""
    form = AccessForm(prefix="access")
    user = accounts.find_user_by_id(read_session(), user_id) or abort(404)
    role, disabled = form.role.data, bool(form.disabled.data)
    changes = role != user.role or disabled != user.is_disabled
    own = user.id == current_actor().user_id  # refused by the domain, with a field error
    if changes and not own and not confirmed() and form.validate_on_submit():
        what = [f"made {role}"] if role != user.role else []
        what += [("disabled" if disabled else "enabled")] if disabled != user.is_disabled else []
        return ask(
            heading=f"Change the access of {user.email}?",
            message=f"The account will be {' and '.join(what)}. Every session of it ends at "
            "once, on all devices; this cannot be undone.",
            button="Change access",
            cancel=url_for("admin.user_detail", user_id=user_id),
        )

    def action() -> None:
        with database().write() as s:
            accounts.set_access(
                s,
                current_actor(),
                user_id,
                role=form.role.data,
                disabled=form.disabled.data,
                reason=form.reason.data,
            )

    return _act("access_form", form, action, user_id, "Access updated.")


@bp.post("/users/<int:user_id>/unflag")
def clear_flag(user_id: int) -> Response | tuple[str, int]:
    """Clear a wallet's refund/dispute flag after review, with a reason."""
    form = ReasonForm(prefix="flag")

    def action() -> None:
        with database().write() as s:
            accounts.clear_flag(s, current_actor(), user_id, form.reason.data)

    return _act("flag_form", form, action, user_id, "Flag cleared.")


@bp.route("/users/<int:user_id>/keys/<int:key_id>/revoke", methods=["GET", "POST"])
def revoke_user_key(user_id: int, key_id: int) -> Response | str:
    """Confirm (GET), then revoke (POST) one of a user's gateway keys."""
    back = url_for("admin.user_detail", user_id=user_id)
    if request.method == "GET":
        keys = user_keys.keys_of(read_session(), user_id)
        key = next((k for k in keys if k.id == key_id and k.revoked_at is None), None)
        if key is None:
            return redirect(back)
        return render_template(
            "admin/confirm.html",
            heading=f"Revoke API key {key.name}?",
            message=f"Key {key.prefix}… stops working at once, for good; calls running "
            "with it finish.",
            action=url_for("admin.revoke_user_key", user_id=user_id, key_id=key_id),
            button="Revoke key",
            cancel=back,
            form=ConfirmForm(),
        )
    if ConfirmForm().validate_on_submit():
        try:
            with database().write() as s:
                row = user_keys.revoke(s, current_actor(), key_id, owner_id=user_id)
        except DomainError as exc:
            flash(exc.message, "error")
        else:
            flash(f"Key {row.prefix}… ({row.name}) revoked.", "success")
    return redirect(url_for("admin.user_detail", user_id=user_id))
