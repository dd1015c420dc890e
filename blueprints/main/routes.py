from flask import current_app, g, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from blueprints.access import login_required
from blueprints.extensions import prices
from blueprints.main import bp
from blueprints.session import read_session
from core import notifications
from core.balances import BalanceView, balance_view


def current_balance() -> BalanceView | None:
    """The signed-in user's balance, looked up once per request."""
    if not current_user.is_authenticated:
        return None
    if "balance" not in g:
        settings = prices().get(read_session()).settings
        g.balance = balance_view(read_session(), settings, user_id=current_user.id)
    return g.balance


@bp.app_context_processor
def inject_balance() -> dict[str, object]:
    return {
        "balance": current_balance(),
        "balance_poll_seconds": current_app.config["BALANCE_POLL_SECONDS"],
    }


@bp.get("/")
def index() -> Response:
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    return redirect(url_for("auth.login"))


@bp.get("/dashboard")
@login_required
def dashboard() -> str:
    notes = notifications.recent(read_session(), current_user.id)
    return render_template("main/dashboard.html", notifications=notes)


@bp.get("/dashboard/balance")
@login_required
def balance_partial() -> str:
    # The badge, plus the alert and the dashboard figure out-of-band.
    return render_template("main/_balance.html", oob=True)
