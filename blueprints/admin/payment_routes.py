"""Payment anomalies: sessions that did not match their top-up, Stripe failures."""

from flask import render_template, request

from blueprints.admin import bp
from blueprints.db_session import read_session
from blueprints.query_args import parse_cursor
from core import payment_anomalies


@bp.get("/payments")
def payment_anomalies_list() -> str:
    """Payment anomalies, newest first, a page at a time."""
    rows, cursor = payment_anomalies.page(read_session(), before_id=parse_cursor(request.args))
    return render_template(
        "admin/payments.html", rows=rows, cursor=cursor, codes=payment_anomalies.CODES
    )
