"""The admin's Dify apps: add, edit, enable or disable (``core.dify_apps``).

An app's API key is written here and never shown back (only "set"); every
change is audited by core.dify_apps. Replacing a key cannot be undone (the
old one is never shown): it asks first (blueprints/confirmation.py).
Disabling an app can be undone (enable it again) and does not ask.
"""

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from blueprints.access import current_actor
from blueprints.admin import bp
from blueprints.admin.dify_forms import DifyAppForm
from blueprints.admin.forms import field_named
from blueprints.confirmation import ask, confirmed
from blueprints.db_session import read_session
from blueprints.extensions import database, secret_box
from core import catalog, dify_apps
from core.errors import DomainError


def _form(**data: object) -> DifyAppForm:
    form = DifyAppForm(**data)
    form.billing_model.choices = [m.name for m in catalog.models_by_name(read_session())]
    return form


@bp.route("/dify-apps", methods=["GET", "POST"])
def dify_apps_page() -> Response | tuple[str, int]:
    """The registered apps (keys shown only as set), and the form that adds one."""
    form = _form()
    if form.validate_on_submit():
        try:
            with database().write() as s:
                row = dify_apps.create_app(
                    s,
                    current_actor(),
                    secret_box(),
                    slug=form.slug.data,
                    name=form.name.data,
                    base_url=form.base_url.data,
                    api_key=form.api_key.data,
                    billing_model=form.billing_model.data,
                    max_input_tokens=form.max_input_tokens.data,
                    max_output_tokens=form.max_output_tokens.data,
                    enabled=form.enabled.data,
                )
        except DomainError as exc:
            field_named(form, exc.details.get("field"), form.slug).errors.append(exc.message)
        else:
            flash(f"Dify app {row.name} added.", "success")
            return redirect(url_for("admin.dify_apps_page"))
    rows = dify_apps.apps(read_session())
    html = render_template("admin/dify_apps.html", form=form, apps=rows)
    return html, 400 if form.errors else 200


@bp.route("/dify-apps/<int:app_id>", methods=["GET", "POST"])
def edit_dify_app(app_id: int) -> Response | tuple[str, int]:
    """One app: name, base URL, a new key (blank keeps it), billing model, hold, enabled."""
    view = dify_apps.find_app(read_session(), app_id) or abort(404)
    row = view.app
    if request.method == "POST":
        form = _form()
    else:
        form = _form(
            name=row.name,
            base_url=row.base_url,
            billing_model=view.model_name,
            max_input_tokens=row.max_input_tokens,
            max_output_tokens=row.max_output_tokens,
            enabled=row.enabled,
        )
    if form.validate_on_submit() and form.api_key.data and not confirmed():
        return ask(
            heading=f"Replace the API key of {row.name}?",
            message="Chats with this app use the new key at once. The current key is stored "
            "only encrypted and is never shown: it cannot be brought back from here.",
            button="Replace key",
            cancel=url_for("admin.edit_dify_app", app_id=app_id),
        )
    if form.validate_on_submit():
        try:
            with database().write() as s:
                dify_apps.update_app(
                    s,
                    current_actor(),
                    secret_box(),
                    app_id,
                    name=form.name.data,
                    base_url=form.base_url.data,
                    api_key=form.api_key.data or None,
                    billing_model=form.billing_model.data,
                    max_input_tokens=form.max_input_tokens.data,
                    max_output_tokens=form.max_output_tokens.data,
                    enabled=form.enabled.data,
                )
        except DomainError as exc:
            field_named(form, exc.details.get("field"), form.name).errors.append(exc.message)
        else:
            flash(f"Dify app {row.name} saved.", "success")
            return redirect(url_for("admin.dify_apps_page"))
    html = render_template("admin/dify_app_edit.html", form=form, view=view)
    return html, 400 if form.errors else 200
