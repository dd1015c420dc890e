"""The confirmation step of an irreversible action, without script.

A form whose action cannot be undone posts as usual; once it validates (CSRF
included), the view calls ``ask`` instead of acting unless ``confirmed()``:
the answer is a page that says what will happen, and whose one form posts the
same fields again with ``confirmed=yes``. Only that second POST acts; the
first changes nothing. Cancel goes back without posting.

The fields travel as hidden inputs, so the page is sent ``no-store`` (it may
carry a secret the admin just typed).
"""

from __future__ import annotations

from flask import make_response, render_template, request
from werkzeug.wrappers import Response

CONFIRM_FIELD = "confirmed"


def confirmed() -> bool:
    """The POST came from a confirmation page."""
    return request.form.get(CONFIRM_FIELD) == "yes"


def ask(*, heading: str, message: str, button: str, cancel: str) -> Response:
    """The confirmation page for the current POST: its fields, carried."""
    carried = [
        (name, value)
        for name, values in request.form.lists()
        if name != CONFIRM_FIELD
        for value in values
    ]
    html = render_template(
        "admin/confirm.html",
        heading=heading,
        message=message,
        action=request.full_path.rstrip("?"),
        button=button,
        cancel=cancel,
        carried=carried,
    )
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response
