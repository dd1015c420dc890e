from flask import Blueprint

bp = Blueprint("pricing", __name__, url_prefix="/pricing")

from blueprints.pricing import routes  # noqa: E402,F401
