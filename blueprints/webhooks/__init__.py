from flask import Blueprint

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

from blueprints.webhooks import routes  # noqa: E402,F401
