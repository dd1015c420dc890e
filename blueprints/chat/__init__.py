"""Chat with the organisation's Dify apps (``core.dify``): ``/chat``."""

from flask import Blueprint

bp = Blueprint("chat", __name__, url_prefix="/chat")

from blueprints.chat import routes  # noqa: E402, F401
