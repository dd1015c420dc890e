"""Exchange rate: current value, change with reason, history, live impact preview."""

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from blueprints.access import current_actor
from blueprints.admin import bp
from blueprints.admin.forms import RateForm
from blueprints.db_session import price_book, read_session
from blueprints.extensions import database
from core import catalog, impact, settings
from core.errors import DomainError
from core.pricing import parse_rate


def _render(form: RateForm, status: int = 200) -> tuple[str, int]:
    book = price_book()
    history = catalog.rate_history(read_session())
    preview = impact.rate_impact(read_session(), book, book.credits_per_usd)
    html = render_template("admin/rate.html", form=form, history=history, impact=preview)
    return html, status


@bp.get("/rate")
def rate() -> tuple[str, int]:
    """The current exchange rate, its history and the change form."""
    return _render(RateForm())


@bp.post("/rate")
def change_rate() -> Response | tuple[str, int]:
    """Set a new exchange rate, with a reason."""
    form = RateForm()
    if not form.validate_on_submit():
        return _render(form, 400)
    try:
        with database().write() as s:
            change = catalog.set_rate(s, current_actor(), form.rate_value, form.reason.data)
    except DomainError as exc:
        form.credits_per_usd.errors.append(exc.message)
        return _render(form, 400)
    old, new = change.old_credits_per_usd or 0, change.credits_per_usd
    flash(f"Rate changed: {old:,} → {new:,} credits per USD.", "success")
    return redirect(url_for("admin.rate"))


@bp.get("/rate/preview")
def rate_preview() -> str:
    """htmx partial, re-requested as the admin types a new rate."""
    book = price_book()
    raw = request.args.get("credits_per_usd", "").strip()
    try:
        new_rate = parse_rate(raw) if raw else book.credits_per_usd
        settings.check_topups_fit(book.settings.topup_options_usd, new_rate)
    except DomainError as exc:  # a bad number, or what saving would refuse, said while typing
        return render_template("admin/_rate_preview.html", impact=None, error=exc.message)
    preview = impact.rate_impact(read_session(), book, new_rate)
    return render_template("admin/_rate_preview.html", impact=preview, error=None)
