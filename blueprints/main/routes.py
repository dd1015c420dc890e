"""The signed-in user's pages: dashboard, live balance, usage history and export.

Each view parses its arguments, makes its core calls on the request's read
session and renders. The balance is looked up once per request
(``current_balance``) and shared by the header badge, the low-balance alert
and the dashboard figure; ``/dashboard/balance`` re-renders all three for
the htmx poll.
"""

from flask import (
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from blueprints.access import login_required
from blueprints.db_session import price_book, read_session
from blueprints.extensions import database
from blueprints.main import bp
from blueprints.main.csv_export import ExportTooLarge, open_usage_export
from blueprints.query_args import parse_cursor, parse_filters
from core import charts, notifications, usage
from core.balances import BalanceView, balance_view
from core.clock import utcnow


def current_balance() -> BalanceView | None:
    """The signed-in user's balance, looked up once per request."""
    if not current_user.is_authenticated:
        return None
    if "balance" not in g:
        settings = price_book().settings
        g.balance = balance_view(read_session(), settings, user_id=current_user.id)
    return g.balance


@bp.app_context_processor
def inject_balance() -> dict[str, object]:
    """The signed-in user's balance and poll interval, for every template."""
    return {
        "balance": current_balance(),
        "balance_poll_seconds": current_app.config["BALANCE_POLL_SECONDS"],
    }


@bp.get("/")
def index() -> BaseResponse:
    """The dashboard when signed in, else the sign-in page."""
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    return redirect(url_for("auth.login"))


@bp.get("/dashboard")
@login_required
def dashboard() -> str:
    """Balance, usage totals and chart, notifications, recent usage."""
    session = read_session()
    return render_template(
        "main/dashboard.html",
        **_dashboard_usage(),
        notifications=notifications.recent(session, current_user.id),
    )


def _dashboard_usage() -> dict[str, object]:
    """The dashboard's live parts: totals, chart, recent usage."""
    session = read_session()
    summary = usage.summary(session, current_user.id, utcnow().date())
    return {
        "summary": summary,
        "usage_chart": charts.user_credits_per_day(summary),
        "model_chart": charts.user_credits_by_model(summary),
        "recent": usage.recent_events(session, current_user.id),
    }


@bp.get("/dashboard/balance")
@login_required
def balance_partial() -> str:
    """htmx poll: the balance badge, plus the alert and figure out of band;
    polled from the dashboard (``?dashboard=1``), its usage parts too."""
    live = _dashboard_usage() if request.args.get("dashboard") == "1" else None
    return render_template("main/_balance.html", oob=True, dashboard=live)


@bp.get("/usage")
@login_required
def usage_history() -> tuple[str, int]:
    """The user's usage, filtered by dates and model, a page at a time."""
    filters, errors = parse_filters(request.args)
    return _usage_page(filters, errors)


def _usage_page(filters: usage.Filters, errors: list[str]) -> tuple[str, int]:
    rows, next_cursor = usage.history_page(
        read_session(), current_user.id, filters, parse_cursor(request.args)
    )
    html = render_template(
        "main/usage.html",
        rows=rows,
        next_cursor=next_cursor,
        filters=filters,
        errors=errors,
        models=usage.models_used(read_session(), current_user.id),
    )
    return html, 400 if errors else 200


@bp.get("/usage.csv")
@login_required
def usage_export() -> Response | tuple[str, int]:
    """The filtered usage history as a streamed CSV download."""
    filters, _ = parse_filters(request.args)
    try:
        # Its own session: the response streams after this request's teardown.
        export = open_usage_export(
            database(), current_user.id, filters, current_app.config["CSV_EXPORT_MAX_ROWS"]
        )
    except ExportTooLarge as exc:
        return _usage_page(filters, [exc.message])
    response = Response(stream_with_context(export.lines), mimetype="text/csv")
    response.call_on_close(export.close)
    response.headers["Content-Disposition"] = 'attachment; filename="creditline-usage.csv"'
    response.headers["X-Row-Count"] = str(export.rows)
    return response
