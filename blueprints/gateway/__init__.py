"""The OpenAI-compatible metering gateway under ``/v1`` (``core.gateway``)."""

from flask import Blueprint

bp = Blueprint("gateway", __name__, url_prefix="/v1")

from blueprints.gateway import routes  # noqa: E402, F401
