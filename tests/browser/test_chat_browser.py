"""Chat with a Dify app in Chromium: the answer streams in piece by piece, the
balance badge falls after each answer, and the strict CSP holds throughout."""

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from core.pricing import MICRO, format_credits_display
from tests.browser.helpers import screenshot, sign_in
from tests.conftest import Billing
from tests.dify_setup import SLUG, cost_ucr, register_app
from tests.dify_standin import DifyStandIn, Scenario

pytestmark = pytest.mark.browser


@pytest.fixture
def dify() -> Iterator[DifyStandIn]:
    with DifyStandIn() as standin:
        yield standin


def test_two_messages_stream_in_and_the_badge_falls_after_each(
    page, live_server, dify: DifyStandIn
) -> None:
    billing = Billing(live_server.app)
    billing.set_rate(10_000)
    register_app(live_server.app, billing, dify.url)
    billing.user("alice@example.com", 10_000 * MICRO)
    sign_in(page, "alice@example.com")
    page.goto(f"/chat/{SLUG}")
    page.evaluate("window.__noReload = true")
    badge = page.locator("#balance-badge")
    expect(badge).to_have_text("10,000.00 credits")

    dify.next(Scenario(gated=True))
    page.get_by_label("Message").fill("How do I reset my password?")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".chat-turn").nth(0).locator(".chat-text")
    expect(answer).to_have_text("Hello")  # the first piece, the rest held back
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    dify.advance()
    expect(answer).to_have_text("Hello there")
    dify.advance()
    expect(answer).to_have_text("Hello there, how can I help?")
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    after_one = 10_000 * MICRO - cost_ucr(1033, 135)
    expect(badge).to_have_text(f"{format_credits_display(after_one)} credits")

    dify.next(Scenario(pieces=("Open", " Settings", " > Security."), gated=True))
    page.get_by_label("Message").fill("And then?")
    page.get_by_role("button", name="Send").click()
    second = page.locator(".chat-turn").nth(1).locator(".chat-text")
    expect(second).to_have_text("Open")
    dify.advance()
    expect(second).to_have_text("Open Settings")
    dify.advance()
    expect(second).to_have_text("Open Settings > Security.")
    after_two = after_one - cost_ucr(1033, 135)
    expect(badge).to_have_text(f"{format_credits_display(after_two)} credits")

    # One conversation: the second message continued the first in Dify too.
    first_request, second_request = dify.chat_requests
    assert first_request.body["conversation_id"] == ""
    assert second_request.body["conversation_id"]
    conversations = page.locator("#chat-conversation-list li")
    expect(conversations).to_have_count(1)
    expect(conversations).to_contain_text("How do I reset my password?")
    expect(page).to_have_url(re.compile(rf"/chat/{SLUG}\?c=\d+$"))
    assert page.evaluate("window.__noReload") is True
    screenshot(page, "chat")


def test_too_few_credits_shows_a_top_up_link(page, live_server, dify: DifyStandIn) -> None:
    billing = Billing(live_server.app)
    billing.set_rate(10_000)
    register_app(live_server.app, billing, dify.url)
    billing.user("bob@example.com", MICRO)
    sign_in(page, "bob@example.com")
    page.goto(f"/chat/{SLUG}")
    page.get_by_label("Message").fill("hi")
    page.get_by_role("button", name="Send").click()
    notice = page.locator("#chat-notice")
    expect(notice).to_contain_text("credits")
    expect(notice.get_by_role("button", name="Top up")).to_have_attribute("href", "/pricing")
    expect(page.locator(".chat-turn")).to_have_count(0)
    assert dify.requests == []
