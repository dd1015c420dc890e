"""Admin home, integration keys, audit log and analytics.

Every route here is behind the blueprint's admin check (``blueprints.admin``).
Writes go through ``database().write()``; pages read through the request's
read session.
"""

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from blueprints.access import current_actor
from blueprints.admin import bp
from blueprints.admin.forms import ApiKeyForm, ConfirmForm
from blueprints.db_session import read_session
from blueprints.extensions import closed_days, database
from blueprints.query_args import parse_cursor
from core import analytics as reports
from core import audit, charts, integration_keys
from core.clock import utcnow
from core.errors import DomainError


@bp.get("/")
def index() -> str:
    """The admin home: links to every admin page."""
    return render_template("admin/index.html")


@bp.route("/keys", methods=["GET", "POST"])
def keys() -> str:
    """Integration keys, and the form that creates one (shown once)."""
    form, created_key = ApiKeyForm(), None
    if form.validate_on_submit():
        try:
            with database().write() as s:
                _, created_key = integration_keys.create(s, current_actor(), form.name.data)
        except DomainError as exc:
            form.name.errors.append(exc.message)
        else:
            form = ApiKeyForm(formdata=None)
    rows = integration_keys.list_keys(read_session())
    return render_template("admin/keys.html", form=form, keys=rows, created_key=created_key)


@bp.route("/keys/<int:key_id>/revoke", methods=["GET", "POST"])
def revoke_key(key_id: int) -> Response | str:
    """Confirm (GET), then revoke (POST) an integration key."""
    if request.method == "GET":
        key = next((k for k in integration_keys.list_keys(read_session()) if k.id == key_id), None)
        if key is None or key.revoked_at is not None:
            return redirect(url_for("admin.keys"))
        return render_template(
            "admin/confirm.html",
            heading=f"Revoke integration key {key.name}?",
            message=f"Key {key.prefix}… stops working at once, for good: services using it "
            "can no longer report usage.",
            action=url_for("admin.revoke_key", key_id=key_id),
            button="Revoke key",
            cancel=url_for("admin.keys"),
            form=ConfirmForm(),
        )
    if ConfirmForm().validate_on_submit():
        try:
            with database().write() as s:
                row = integration_keys.revoke(s, current_actor(), key_id)
            flash(f"Key {row.prefix}… ({row.name}) revoked.", "success")
        except DomainError as exc:
            flash(exc.message, "error")
    return redirect(url_for("admin.keys"))


@bp.get("/audit")
def audit_log() -> str:
    """The audit log, filtered by action and actor, a page at a time."""
    action = request.args.get("action", "")[:64]
    actor = request.args.get("actor", "")[:254]
    rows, cursor = audit.page(
        read_session(), action=action, actor=actor, before_id=parse_cursor(request.args)
    )
    return render_template(
        "admin/audit.html",
        rows=rows,
        cursor=cursor,
        action=action,
        actor=actor,
        actions=audit.actions(read_session()),
    )


@bp.get("/analytics")
def analytics() -> str:
    """Revenue, credits sold and used, consumption by model, top users."""
    result = reports.report(read_session(), utcnow().date(), closed_days())
    return render_template(
        "admin/analytics.html",
        report=result,
        revenue_chart=charts.net_revenue_per_day(result),
        sold_chart=charts.credits_sold_per_day(result),
        used_chart=charts.credits_used_per_day(result),
        model_chart=charts.credits_by_model(result.by_model),
    )
