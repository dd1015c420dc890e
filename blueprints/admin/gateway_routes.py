"""The gateway's admin pages: upstreams, routes and holds.

An upstream's secret is written here and never shown back (only "set" or
"not set"); changes are audited by core.gateway.routing. Releasing a hold
takes a reason and goes through core.hold_queries (audited ``hold.release``).
Releasing a hold and replacing an upstream's secret cannot be undone: both
ask first (blueprints/confirmation.py).
"""

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from blueprints.access import current_actor
from blueprints.admin import bp
from blueprints.admin.forms import ReasonForm, RouteForm, UpstreamForm, field_named
from blueprints.confirmation import ask, confirmed
from blueprints.db_session import read_session
from blueprints.extensions import database, secret_box
from blueprints.query_args import parse_cursor
from core import catalog, hold_queries
from core.errors import DomainError
from core.gateway import routing


@bp.route("/upstreams", methods=["GET", "POST"])
def upstreams() -> Response | tuple[str, int]:
    """The upstreams (secrets shown only as set or not), and the form that adds one."""
    form = UpstreamForm()
    if form.validate_on_submit():
        try:
            with database().write() as s:
                row = routing.create_upstream(
                    s,
                    current_actor(),
                    secret_box(),
                    form.name.data,
                    form.base_url.data,
                    form.secret.data,
                )
        except DomainError as exc:
            field_named(form, exc.details.get("field"), form.name).errors.append(exc.message)
        else:
            flash(f"Upstream {row.name} added.", "success")
            return redirect(url_for("admin.upstreams"))
    rows = routing.upstreams(read_session())
    html = render_template("admin/upstreams.html", form=form, upstreams=rows)
    return html, 400 if form.errors else 200


@bp.route("/upstreams/<int:upstream_id>", methods=["GET", "POST"])
def edit_upstream(upstream_id: int) -> Response | tuple[str, int]:
    """One upstream: its base URL, a new secret (blank keeps it), enabled."""
    row = routing.find_upstream(read_session(), upstream_id) or abort(404)
    if request.method == "POST":
        form = UpstreamForm()
    else:
        form = UpstreamForm(base_url=row.base_url, enabled=row.enabled)
    if form.validate_on_submit() and form.secret.data and row.secret_sealed and not confirmed():
        return ask(
            heading=f"Replace the secret of upstream {row.name}?",
            message="Calls through this upstream use the new secret at once. The current "
            "secret is stored only encrypted and is never shown: it cannot be brought back "
            "from here.",
            button="Replace secret",
            cancel=url_for("admin.edit_upstream", upstream_id=upstream_id),
        )
    if form.validate_on_submit():
        try:
            with database().write() as s:
                routing.update_upstream(
                    s,
                    current_actor(),
                    secret_box(),
                    upstream_id,
                    base_url=form.base_url.data,
                    secret=form.secret.data or None,
                    enabled=form.enabled.data,
                )
        except DomainError as exc:
            field_named(form, exc.details.get("field"), form.base_url).errors.append(exc.message)
        else:
            flash(f"Upstream {row.name} saved.", "success")
            return redirect(url_for("admin.upstreams"))
    html = render_template("admin/upstream_edit.html", form=form, upstream=row)
    return html, 400 if form.errors else 200


def _route_form() -> RouteForm:
    """The route form with the priced models and the upstreams as its choices."""
    session = read_session()
    form = RouteForm()
    form.model.choices = [m.name for m in catalog.models_by_name(session)]
    form.upstream.choices = [u.name for u in routing.upstreams(session)]
    return form


@bp.route("/routes", methods=["GET", "POST"])
def gateway_routes() -> Response | tuple[str, int]:
    """Every model's route and limits, and the form that creates or updates one."""
    form = _route_form()
    if form.validate_on_submit():
        try:
            with database().write() as s:
                routing.set_route(
                    s,
                    current_actor(),
                    form.model.data,
                    form.upstream.data,
                    upstream_model=form.upstream_model.data,
                    context_window=form.context_window.data,
                    max_output=form.max_output.data,
                    default_output_cap=form.default_output_cap.data,
                    overhead=form.overhead.data,
                    enabled=form.enabled.data,
                )
        except DomainError as exc:
            field_named(form, exc.details.get("field"), form.model).errors.append(exc.message)
        else:
            flash(f"Route of {form.model.data} saved.", "success")
            return redirect(url_for("admin.gateway_routes"))
    rows = routing.routes(read_session())
    html = render_template("admin/routes.html", form=form, routes=rows)
    return html, 400 if form.errors else 200


def _state() -> str:
    state = request.args.get("state", "active")
    return state if state in hold_queries.STATES else "active"


@bp.get("/holds")
def holds() -> str:
    """Active holds, or those released or expired, newest first, a page at a time."""
    state = _state()
    rows, cursor = hold_queries.page(read_session(), state, parse_cursor(request.args))
    return render_template(
        "admin/holds.html", rows=rows, cursor=cursor, state=state, release_form=ReasonForm()
    )


@bp.post("/holds/<int:hold_id>/release")
def release_hold(hold_id: int) -> Response:
    """Release an active hold with no charge, with a reason; asks first (a
    released hold cannot be taken again: what the call spends goes unbilled)."""
    form = ReasonForm()
    if form.validate_on_submit() and not confirmed():
        return ask(
            heading=f"Release hold {hold_id}?",
            message="The reserved credits go back to the user at once and the call is "
            "charged nothing; a released hold cannot be taken again.",
            button="Release hold",
            cancel=url_for("admin.holds"),
        )
    if form.validate_on_submit():
        try:
            hold_queries.release(database(), current_actor(), hold_id, form.reason.data)
        except DomainError as exc:
            flash(exc.message, "error")
        else:
            flash(f"Hold {hold_id} released.", "success")
    else:
        flash("Give a reason to release a hold.", "error")
    return redirect(url_for("admin.holds"))
