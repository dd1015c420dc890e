"""``/chat``: the enabled apps, a user's conversations with one, and its turns.

Parse, one call into ``core.dify``, render. Sending a message answers an HTML
fragment (the turn, whose ``data-events-url`` ``static/chat.js`` connects
to); a refusal answers a fragment that says why, with its status (402 links
to the top-up page). Another user's conversation or turn is a 404.
"""

from __future__ import annotations

from flask import Response, abort, render_template, request, url_for
from flask_login import current_user

from blueprints.access import login_required
from blueprints.chat import bp
from blueprints.chat.forms import MessageForm
from blueprints.db_session import read_session
from blueprints.errors import ERROR_STATUS
from blueprints.extensions import dify_chat
from core import dify_apps, dify_queries
from core.dify import Chatter
from core.dify_models import ChatConversation
from core.errors import ChatNotFound, DomainError, InsufficientCredits


def _id(text: str | None) -> int | None:
    """A positive id from a query or form value; None when blank; 404 when not an id."""
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        abort(404)
    return int(text)


@bp.get("")
@login_required
def index() -> str:
    """The apps the user can chat with."""
    return render_template(
        "chat/index.html", apps=dify_apps.apps(read_session(), enabled_only=True)
    )


@bp.get("/<slug>")
@login_required
def app_page(slug: str) -> str:
    """The user's conversations with the app, and one of them (``?c=<id>``) or a new one."""
    session = read_session()
    app = dify_apps.enabled_app(session, slug) or abort(404)
    conversation_id = _id(request.args.get("c"))
    conversation, turns = None, []
    if conversation_id is not None:
        conversation = dify_queries.conversation(
            session, current_user.id, app.id, conversation_id
        ) or abort(404)
        turns = dify_queries.turns(session, conversation.id)
    form = MessageForm(conversation_id=str(conversation.id) if conversation else "")
    return render_template(
        "chat/app.html",
        app=app,
        form=form,
        conversation=conversation,
        turns=turns,
        conversations=dify_queries.conversations(session, current_user.id, app.id),
    )


def _refused(message: str, status: int, *, top_up: bool = False) -> tuple[str, int]:
    return render_template("chat/_refused.html", message=message, top_up=top_up), status


@bp.post("/<slug>/turns")
@login_required
def send(slug: str) -> Response | tuple[str, int]:
    """Hold the message's worst case, store the turn, answer its fragment."""
    form = MessageForm()
    if not form.validate_on_submit():
        errors = [e for field in form for e in field.errors]
        return _refused(errors[0] if errors else "Write a message first.", 400)
    try:
        started = dify_chat().start_turn(
            Chatter(current_user.id, current_user.email),
            slug,
            form.query.data,
            _id(form.conversation_id.data),
        )
    except InsufficientCredits as exc:
        return _refused(exc.message, 402, top_up=True)
    except DomainError as exc:
        return _refused(exc.message, ERROR_STATUS[exc.code])
    session = read_session()
    turn = dify_queries.turn(session, current_user.id, started.turn_id)
    conversation = None
    if started.new_conversation:
        conversation = session.get(ChatConversation, started.conversation_id)
    html = render_template(
        "chat/_sent.html",
        turn=turn,
        conversation_id=started.conversation_id,
        new_conversation=conversation,
        slug=slug,
    )
    response = Response(html)
    if started.new_conversation:
        response.headers["HX-Push-Url"] = url_for(
            "chat.app_page", slug=slug, c=started.conversation_id
        )
    return response


@bp.get("/turns/<int:turn_id>/events")
@login_required
def events(turn_id: int) -> Response:
    """The turn's answer as server-sent events (its owner only)."""
    try:
        body = dify_chat().open_turn(current_user.id, turn_id)
    except ChatNotFound:
        abort(404)
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.post("/turns/<int:turn_id>/stop")
@login_required
def stop(turn_id: int) -> tuple[str, int]:
    """Ask Dify to stop the turn's answer (its owner only)."""
    try:
        dify_chat().stop_turn(current_user.id, turn_id)
    except ChatNotFound:
        abort(404)
    return "", 204
