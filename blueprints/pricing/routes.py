"""Top-ups: the options at the current rate, Stripe Checkout, and the return pages.

Which amounts may be bought, and the credits they buy, are the domain's
(``core.topups``, ``core.payments``). The success page asks Stripe and
credits the top-up if it is paid (shown only to its buyer); if Stripe cannot
say, the webhook credits it later. Either way it is credited once.
"""

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from blueprints.access import login_required
from blueprints.db_session import price_book
from blueprints.extensions import database, prices, stripe_gateway
from blueprints.pricing import bp
from blueprints.pricing.forms import CheckoutForm
from core import payments, topups
from core.errors import DomainError
from core.stripe_gateway import PaymentProviderError


def _render_pricing(status: int = 200) -> tuple[str, int]:
    book = price_book()
    html = render_template(
        "pricing/pricing.html",
        options=topups.options(book),
        payments_enabled=stripe_gateway().configured,
        form=CheckoutForm(formdata=None),
    )
    return html, status


@bp.get("")
@login_required
def index() -> tuple[str, int]:
    """The top-up options and their credits at the current rate."""
    return _render_pricing()


@bp.post("/checkout")
@login_required
def checkout() -> Response | tuple[str, int]:
    """Start a Stripe Checkout for one of the offered amounts."""
    form = CheckoutForm()
    if not form.validate_on_submit():
        flash("Choose one of the top-up amounts offered.", "error")
        return _render_pricing(400)
    try:
        url = payments.begin_checkout(
            database(),
            stripe_gateway(),
            prices(),
            current_user.id,
            form.amount_usd.data,
            # Stripe fills in {CHECKOUT_SESSION_ID}; url_for would escape the braces.
            url_for("pricing.success", _external=True) + "?session_id={CHECKOUT_SESSION_ID}",
            url_for("pricing.cancel", _external=True),
        )
    except DomainError as exc:
        current_app.logger.warning("checkout refused: %s", exc.message)
        flash(exc.message, "error")
        # Stripe failing is ours (503); anything else is a refusal of this request.
        return _render_pricing(503 if exc.code == "payment_provider_error" else 400)
    return redirect(url, code=303)


@bp.get("/success")
@login_required
def success() -> str:
    """Back from Stripe: credit the top-up if paid, and say so."""
    session_id = request.args.get("session_id", "")
    if not session_id.startswith("cs_") or len(session_id) > 255:
        abort(404)
    try:
        result = payments.fulfil(database(), stripe_gateway(), session_id)
    except PaymentProviderError as exc:
        # Stripe could not say whether it is paid; the webhook will credit it.
        abort(503, exc.message)
    except DomainError as exc:
        current_app.logger.error("fulfilment of %s failed: %r", session_id, exc)
        abort(
            503,
            "We could not confirm this payment right now; if it went through, "
            "the credits will be added shortly.",
        )
    if result is None or result.user_id != current_user.id:
        abort(404)
    return render_template("pricing/success.html", result=result)


@bp.get("/cancel")
@login_required
def cancel() -> str:
    """Back from Stripe without paying."""
    return render_template("pricing/cancel.html")
