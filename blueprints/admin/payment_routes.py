"""Payment anomalies: sessions that did not match their top-up, Stripe failures."""

from flask import render_template, request

from blueprints.admin import bp
from blueprints.main.filters import parse_cursor
from blueprints.session import read_session
from core import payment_anomalies


@bp.get("/payments")
def payment_anomalies_list() -> str:
    rows, cursor = payment_anomalies.page(read_session(), before_id=parse_cursor(request.args))
    return render_template(
        "admin/payments.html", rows=rows, cursor=cursor, codes=payment_anomalies.CODES
    )
