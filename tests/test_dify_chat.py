"""Chat with a Dify app, end to end against the loopback stand-in: the hold, the
stream, the charge at the billing model (once), every ending, and ownership."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core import audit, dify_apps
from core.accounts import find_user
from core.dify_models import ChatConversation, ChatTurn
from core.gateway.models import Hold
from core.models import UsageEvent
from core.pricing import MICRO
from tests.conftest import AuthActions, Billing, post_form
from tests.dify_setup import (
    HOLD_UCR,
    SLUG,
    cost_ucr,
    events_url,
    parse_events,
    read_events,
    register_app,
    send,
)
from tests.dify_standin import DifyStandIn, Scenario

ALICE = "alice@example.com"


@pytest.fixture
def dify() -> Iterator[DifyStandIn]:
    with DifyStandIn() as standin:
        yield standin


@pytest.fixture
def chat(app: Flask, billing: Billing, auth: AuthActions, dify: DifyStandIn) -> Billing:
    """Alice, with 100 credits, signed in; the stand-in registered as "support"."""
    billing.set_rate(10_000)
    register_app(app, billing, dify.url)
    billing.user(ALICE, 100 * MICRO)
    auth.login(ALICE)
    return billing


def _wallet(billing: Billing, email: str = ALICE) -> tuple[int, int]:
    with billing.db.read_session() as s:
        wallet = find_user(s, email).wallet
        return wallet.balance_ucr, wallet.reserved_ucr


def _usage(billing: Billing) -> list[UsageEvent]:
    with billing.db.read_session() as s:
        return list(s.scalars(select(UsageEvent).order_by(UsageEvent.id)))


def _turn(billing: Billing, turn_id: int | None = None) -> ChatTurn:
    with billing.db.read_session() as s:
        query = select(ChatTurn).order_by(ChatTurn.id.desc())
        if turn_id is not None:
            query = query.where(ChatTurn.id == turn_id)
        turn = s.scalars(query).first()
        assert turn is not None
        return turn


def test_a_message_holds_streams_and_is_charged_exactly_once(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    status, fragment = send(client, "How do I reset my password?")
    assert status == 200
    url = events_url(fragment)
    assert url.startswith("/chat/turns/") and url.endswith("/events")
    assert _wallet(chat) == (100 * MICRO, HOLD_UCR)  # held, Dify not called yet
    assert dify.chat_requests == []

    events = read_events(client, url)

    assert events == [
        ("delta", "Hello"),
        ("delta", " there"),
        ("delta", ", how can I help?"),
        ("end", "Hello there, how can I help?"),
    ]
    cost = cost_ucr(1033, 135)
    assert cost == 2_359_500
    assert _wallet(chat) == (100 * MICRO - cost, 0)
    (event,) = _usage(chat)
    assert event.cost_ucr == cost
    assert (event.input_tokens, event.output_tokens) == (1033, 135)
    assert event.source == "Chat · Support bot"
    assert event.hold_id is not None and event.integration_key_id is None
    assert event.model_name == "gpt-4o-mini"
    turn = _turn(chat)
    assert event.event_id == turn.message_id  # the events' message_id, not message_end.id
    assert not event.event_id.startswith("end-")
    assert turn.state == "done" and turn.dify_total_price == "0"
    assert turn.charged_ucr == cost
    (sent,) = dify.chat_requests
    assert sent.body["query"] == "How do I reset my password?"
    assert sent.body["response_mode"] == "streaming"
    assert sent.body["conversation_id"] == ""
    assert sent.body["user"] == f"creditline-{turn.user_id}"
    assert "@" not in sent.body["user"]
    assert chat.problems() == []


def test_usage_history_and_csv_show_the_chat_source(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    _, fragment = send(client, "hi")
    read_events(client, events_url(fragment))
    assert "Chat · Support bot" in client.get("/usage").get_data(as_text=True)
    assert "Chat · Support bot" in client.get("/usage.csv").get_data(as_text=True)


def test_the_second_message_continues_the_dify_conversation(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    _, first = send(client, "first")
    read_events(client, events_url(first))
    with chat.db.read_session() as s:
        conversation = s.scalars(select(ChatConversation)).one()
    assert conversation.dify_conversation_id

    status, second = send(client, "second", conversation.id)
    assert status == 200
    read_events(client, events_url(second))

    assert [r.body["conversation_id"] for r in dify.chat_requests] == [
        "",
        conversation.dify_conversation_id,
    ]
    page = client.get(f"/chat/{SLUG}?c={conversation.id}").get_data(as_text=True)
    assert page.count('class="chat-turn"') == 2
    assert len(_usage(chat)) == 2
    assert _wallet(chat) == (100 * MICRO - 2 * cost_ucr(1033, 135), 0)


def test_a_replayed_events_url_never_calls_dify_or_charges_again(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    _, fragment = send(client, "hi")
    url = events_url(fragment)
    first = read_events(client, url)
    again = read_events(client, url)
    assert again == [("end", first[-1][1])]
    assert len(dify.chat_requests) == 1
    assert len(_usage(chat)) == 1
    assert _wallet(chat)[0] == 100 * MICRO - cost_ucr(1033, 135)


def test_the_answer_is_sent_html_escaped(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    dify.next(Scenario(pieces=("<script>x</script>", " & more")))
    _, fragment = send(client, "hi")
    events = read_events(client, events_url(fragment))
    assert events[0] == ("delta", "&lt;script&gt;x&lt;/script&gt;")
    assert events[-1] == ("end", "&lt;script&gt;x&lt;/script&gt; &amp; more")
    page = client.get(f"/chat/{SLUG}?c={_turn(chat).conversation_id}").get_data(as_text=True)
    assert "<script>x</script>" not in page


def test_agent_thoughts_show_their_step_and_a_replace_replaces(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    dify.next(
        Scenario(
            pieces=("Let me", " look"),
            agent=True,
            thoughts=("web_search",),
            replace_with="Redacted",
        )
    )
    _, fragment = send(client, "search")
    events = read_events(client, events_url(fragment))
    assert events == [
        ("step", "Using web_search"),
        ("delta", "Let me"),
        ("delta", " look"),
        ("replace", "Redacted"),
        ("end", "Redacted"),
    ]
    assert _turn(chat).answer == "Redacted"
    assert len(_usage(chat)) == 1


def test_a_dify_error_releases_the_hold(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    dify.next(Scenario(pieces=("Partial",), error=("provider_quota_exceeded", "quota secret")))
    _, fragment = send(client, "hi")
    events = read_events(client, events_url(fragment))
    assert events[0] == ("delta", "Partial")
    assert events[-1][0] == "error"
    assert "nothing was charged" in events[-1][1]
    assert "quota secret" not in events[-1][1]
    assert _wallet(chat) == (100 * MICRO, 0)
    assert _usage(chat) == []
    assert _turn(chat).state == "failed"
    with chat.db.read_session() as s:
        assert s.scalars(select(Hold.status)).one() == "released"
    assert chat.problems() == []


@pytest.mark.parametrize(
    "scenario", [Scenario(cut_after=1), Scenario(cut_after=0, ping=False), Scenario(status=400)]
)
def test_a_cut_stream_or_a_refusal_releases_the_hold(
    client: FlaskClient, chat: Billing, dify: DifyStandIn, scenario: Scenario
) -> None:
    dify.next(scenario)
    _, fragment = send(client, "hi")
    events = read_events(client, events_url(fragment))
    assert events[-1][0] == "error"
    assert _wallet(chat) == (100 * MICRO, 0)
    assert _usage(chat) == []
    assert _turn(chat).state == "failed"
    assert len(dify.chat_requests) == 1
    # A reconnect replays the failure; Dify is not called again.
    assert read_events(client, events_url(fragment)) == [events[-1]]
    assert len(dify.chat_requests) == 1


def test_a_browser_leaving_mid_answer_is_still_charged_once(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    dify.next(Scenario(gated=True))
    _, fragment = send(client, "hi")
    url = events_url(fragment)
    response = client.get(url, buffered=False)
    chunks = iter(response.response)
    seen = b""
    while b"event: delta" not in seen:
        seen += next(chunks)
    dify.advance(2)  # the rest of the answer goes out while nobody reads it
    response.close()  # the browser is gone

    cost = cost_ucr(1033, 135)
    (event,) = _usage(chat)
    assert event.cost_ucr == cost and event.disconnected
    assert _wallet(chat) == (100 * MICRO - cost, 0)
    turn = _turn(chat)
    assert turn.state == "done" and turn.answer == "Hello there, how can I help?"
    assert read_events(client, url) == [("end", "Hello there, how can I help?")]
    assert len(dify.chat_requests) == 1
    assert chat.problems() == []


def test_a_browser_gone_before_the_first_event_is_still_charged(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    _, fragment = send(client, "hi")
    response = client.get(events_url(fragment), buffered=False)
    response.close()
    (event,) = _usage(chat)
    assert event.cost_ucr == cost_ucr(1033, 135) and event.disconnected
    assert _wallet(chat)[1] == 0


def test_stop_asks_dify_to_stop_and_charges_what_was_generated(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    dify.next(Scenario(gated=True))
    _, fragment = send(client, "hi")
    turn_id = _turn(chat).id
    response = client.get(events_url(fragment), buffered=False)
    chunks = iter(response.response)
    seen = b""
    while b"event: delta" not in seen:
        seen += next(chunks)

    stopped = post_form(client, f"/chat/turns/{turn_id}/stop", csrf_page=f"/chat/{SLUG}")
    assert stopped.status_code == 204
    rest = b"".join(chunks)
    response.close()

    (stop,) = dify.stop_requests
    assert stop.path == f"/v1/chat-messages/{_turn(chat).task_id}/stop"
    assert stop.body == {"user": f"creditline-{_turn(chat).user_id}"}
    assert parse_events((seen + rest).decode())[-1] == ("end", "Hello")
    (event,) = _usage(chat)
    assert event.output_tokens == 1 and event.cost_ucr == cost_ucr(1033, 1)


def test_too_few_credits_is_a_402_fragment_with_a_top_up_link(
    client: FlaskClient, billing: Billing, auth: AuthActions, app: Flask, dify: DifyStandIn
) -> None:
    billing.set_rate(10_000)
    register_app(app, billing, dify.url)
    billing.user("poor@example.com", HOLD_UCR - 1)
    auth.login("poor@example.com")
    status, fragment = send(client, "hi")
    assert status == 402
    assert 'href="/pricing' in fragment
    assert "data-events-url" not in fragment
    assert dify.requests == []
    with billing.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ChatTurn)) == 0
        assert s.scalar(select(func.count()).select_from(Hold)) == 0


def test_another_user_can_never_reach_a_conversation_or_turn(
    client: FlaskClient, chat: Billing, auth: AuthActions, dify: DifyStandIn
) -> None:
    dify.next(Scenario(gated=True))
    _, fragment = send(client, "private question")
    turn = _turn(chat)
    auth.logout()
    chat.user("mallory@example.com", 100 * MICRO)
    auth.login("mallory@example.com")

    assert client.get(f"/chat/{SLUG}?c={turn.conversation_id}").status_code == 404
    assert client.get(events_url(fragment)).status_code == 404
    stop = post_form(client, f"/chat/turns/{turn.id}/stop", csrf_page=f"/chat/{SLUG}")
    assert stop.status_code == 404
    status, _ = send(client, "continue it", turn.conversation_id)
    assert status == 404
    assert "private question" not in client.get(f"/chat/{SLUG}").get_data(as_text=True)
    assert dify.requests == []  # nothing reached Dify
    assert _turn(chat).state == "pending"


def test_chat_pages_list_enabled_apps_only(
    client: FlaskClient, chat: Billing, app: Flask, dify: DifyStandIn
) -> None:
    assert "Support bot" in client.get("/chat").get_data(as_text=True)
    assert client.get("/chat/nope").status_code == 404
    with chat.db.write() as s:
        dify_apps.update_app(
            s, audit.CLI, app.extensions["creditline.gateway"].box, 1, enabled=False
        )
    assert "Support bot" not in client.get("/chat").get_data(as_text=True)
    assert client.get(f"/chat/{SLUG}").status_code == 404
    status, _ = send(client, "hi")
    assert status == 404


def test_a_reconnect_while_the_answer_runs_waits_and_replays_without_calling_dify(
    client: FlaskClient, chat: Billing, app: Flask, dify: DifyStandIn
) -> None:
    dify.next(Scenario(gated=True))
    _, fragment = send(client, "hi")
    url = events_url(fragment)
    first = client.get(url, buffered=False)
    chunks = iter(first.response)
    seen = b""
    while b"event: delta" not in seen:
        seen += next(chunks)

    second_tab = app.test_client()
    AuthActions(second_tab).login(ALICE)
    replayed: list[list[tuple[str, str]]] = []
    reader = threading.Thread(target=lambda: replayed.append(read_events(second_tab, url)))
    reader.start()
    dify.advance(2)
    rest = b"".join(chunks)
    first.close()
    reader.join(timeout=30)

    assert parse_events((seen + rest).decode())[-1] == ("end", "Hello there, how can I help?")
    assert replayed == [[("end", "Hello there, how can I help?")]]
    assert len(dify.chat_requests) == 1
    assert len(_usage(chat)) == 1


def test_stopping_a_message_not_yet_sent_releases_its_hold(
    client: FlaskClient, chat: Billing, dify: DifyStandIn
) -> None:
    _, fragment = send(client, "hi")
    turn = _turn(chat)
    stopped = post_form(client, f"/chat/turns/{turn.id}/stop", csrf_page=f"/chat/{SLUG}")
    assert stopped.status_code == 204
    assert _wallet(chat) == (100 * MICRO, 0)
    assert read_events(client, events_url(fragment))[-1][0] == "error"
    assert dify.requests == []
    assert _usage(chat) == []
    assert chat.problems() == []
