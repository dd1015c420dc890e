"""Models: prices in USD per 1M tokens, enabled flag, each change with a reason."""

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from blueprints.access import current_actor
from blueprints.admin import bp
from blueprints.admin.forms import ModelForm
from blueprints.db_session import price_book, read_session
from blueprints.extensions import database
from core import catalog, impact
from core.errors import DomainError
from core.models import AiModel
from core.pricing import format_usd_per_m


def _current(model: AiModel) -> dict[str, object]:
    return {
        "name": model.name,
        "display_name": model.display_name,
        "input_usd": format_usd_per_m(model.input_price_uusd_per_m),
        "output_usd": format_usd_per_m(model.output_price_uusd_per_m),
        "enabled": model.enabled,
    }


def _save(form: ModelForm, *, create: bool) -> str | None:
    """Apply the form through the catalog; the error message, or None.

    ``create``: the "Add a model" form, which refuses a name already in use
    (changing a live price is the edit page's job, with its history in view).
    """
    try:
        with database().write() as s:
            catalog.set_model_price(
                s,
                current_actor(),
                form.name.data.strip(),
                input_uusd_per_m=form.input_uusd,
                output_uusd_per_m=form.output_uusd,
                enabled=form.enabled.data,
                reason=form.reason.data,
                display_name=(form.display_name.data or "").strip() or None,
                create_only=create,
            )
    except DomainError as exc:
        return exc.message
    return None


@bp.route("/models", methods=["GET", "POST"])
def models() -> Response | tuple[str, int]:
    """The model list with sample costs, and the form that adds a model."""
    form = ModelForm()
    if form.validate_on_submit():
        error = _save(form, create=True)
        if error is None:
            flash(f"Model {form.name.data} saved.", "success")
            return redirect(url_for("admin.models"))
        form.name.errors.append(error)
    rows = catalog.models_by_name(read_session())
    sample = impact.sample_costs(rows, price_book().credits_per_usd)
    html = render_template("admin/models.html", form=form, models=rows, sample=sample)
    return html, 400 if form.errors else 200


@bp.route("/models/<int:model_id>", methods=["GET", "POST"])
def edit_model(model_id: int) -> Response | tuple[str, int]:
    """One model's prices and enabled flag, with its price history."""
    model = catalog.find_model(read_session(), model_id) or abort(404)
    form = ModelForm() if request.method == "POST" else ModelForm(data=_current(model))
    form.name.data = model.name  # the id integrations send never changes here
    if form.validate_on_submit():
        error = _save(form, create=False)
        if error is None:
            flash(f"Model {model.name} updated.", "success")
            return redirect(url_for("admin.edit_model", model_id=model.id))
        form.reason.errors.append(error)
    history = catalog.price_history(read_session(), model.id)
    html = render_template("admin/model_edit.html", form=form, model=model, history=history)
    return html, 400 if form.errors else 200
