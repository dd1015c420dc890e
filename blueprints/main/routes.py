from flask import redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from blueprints.access import login_required
from blueprints.main import bp


@bp.get("/")
def index() -> Response:
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    return redirect(url_for("auth.login"))


@bp.get("/dashboard")
@login_required
def dashboard() -> str:
    return render_template("main/dashboard.html")
