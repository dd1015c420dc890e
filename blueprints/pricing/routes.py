from flask import current_app, render_template

from blueprints.access import login_required
from blueprints.extensions import prices
from blueprints.pricing import bp
from blueprints.session import read_session
from core import topups


@bp.get("")
@login_required
def index() -> str:
    book = prices().get(read_session())
    return render_template(
        "pricing/pricing.html",
        options=topups.options(book),
        payments_enabled=bool(current_app.config["STRIPE_SECRET_KEY"]),
    )
