from flask import Blueprint

bp = Blueprint("main", __name__)

from blueprints.main import routes, settings_routes  # noqa: E402,F401
