"""Admin settings: top-up options, per-event caps, overdraft, default alert,
sign-up mode, webhook URL and secret; the Stripe set-up's status beside them.

Replacing a webhook secret that is set cannot be undone (the old one is never
shown, and receivers reject what the new one signs until they have it): it
asks first (blueprints/confirmation.py)."""

from flask import current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from blueprints.access import current_actor
from blueprints.admin import bp
from blueprints.admin.forms import ReasonForm, SettingsForm, field_named
from blueprints.confirmation import ask, confirmed
from blueprints.db_session import price_book, read_session
from blueprints.extensions import database, secret_box
from blueprints.template_filters import exact_credits
from core import setting_values, stripe_status
from core import settings as settings_mod
from core.errors import DomainError


def _current() -> dict[str, str]:
    """The form's values as the pages write numbers: thousands separated, exact."""
    now = price_book().settings
    return {
        "topup_options": ", ".join(str(v) for v in now.topup_options_usd),
        "max_tokens": f"{now.max_tokens_per_event:,}",
        "max_credits": exact_credits(now.max_credits_per_event_ucr),
        "overdraft": exact_credits(now.overdraft_limit_ucr),
        "threshold": exact_credits(now.default_low_balance_threshold_ucr),
        "registration": now.registration,
        "webhook_url": now.webhook_url,
    }


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Response | tuple[str, int]:
    """The admin settings form; saves only the settings that changed."""
    form = SettingsForm() if request.method == "POST" else SettingsForm(data=_current())
    replacing = bool(form.webhook_secret.data and price_book().settings.webhook_secret)
    if replacing and not confirmed() and form.validate_on_submit():
        return ask(
            heading="Replace the webhook secret?",
            message="Webhooks are signed with the new secret from now on; receivers that "
            "still check the current one reject them until they are given the new one. The "
            "current secret is stored only encrypted and is never shown: it cannot be "
            "brought back from here.",
            button="Save settings and replace the secret",
            cancel=url_for("admin.settings"),
        )
    if form.validate_on_submit():
        changes = settings_mod.changed_settings(price_book().settings, form.values)
        if form.webhook_secret.data:
            changes["webhook_secret"] = form.webhook_secret.data
        try:
            if changes:
                changes = setting_values.seal_secret(changes, secret_box())
                with database().write() as s:
                    settings_mod.update(s, current_actor(), form.reason.data, **changes)
        except DomainError as exc:  # shown on the field it concerns, if it names one
            field_named(form, exc.details.get("field"), form.reason).errors.append(exc.message)
        else:
            flash(f"Settings saved ({len(changes)} changed).", "success")
            return redirect(url_for("admin.settings"))
    stripe = stripe_status.status(
        read_session(),
        current_app.config["STRIPE_SECRET_KEY"],
        current_app.config["STRIPE_WEBHOOK_SECRET"],
    )
    html = render_template(
        "admin/settings.html",
        form=form,
        invite_form=ReasonForm(formdata=None, prefix="invite"),
        secret_set=bool(price_book().settings.webhook_secret),
        stripe=stripe,
    )
    return html, 400 if form.errors else 200
