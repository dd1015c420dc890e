from flask import Blueprint

from blueprints.access import require_admin

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Deny by default: every admin route, present and future, passes this check
# before its view runs, whether or not the view remembers a decorator.
bp.before_request(require_admin)

from blueprints.admin import (  # noqa: E402,F401
    dify_routes,
    gateway_routes,
    model_routes,
    payment_routes,
    rate_routes,
    routes,
    settings_routes,
    signup_routes,
    user_routes,
)
