"""A user's top-up journey in Chromium: pricing shows exact credits; a paid
Checkout Session, reported by webhook, changes the open dashboard live."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from core.pricing import MICRO as CR
from tests.browser.conftest import watch_csp
from tests.browser.helpers import screenshot, sign_in
from tests.conftest import Billing, LiveServer, make_test_app
from tests.stripe_fake import WEBHOOK_SECRET, FakeStripe, session_event, signed

pytestmark = pytest.mark.browser


@pytest.fixture
def shop_server(db_config) -> Iterator[tuple[LiveServer, FakeStripe]]:
    fake = FakeStripe()
    app = make_test_app(
        db_config,
        BALANCE_POLL_SECONDS=1,
        STRIPE_SECRET_KEY="sk_test_creditline",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_HTTP_CLIENT=fake,
        STRIPE_CHECKOUT_ORIGIN="https://checkout.stripe.test",
    )
    server = LiveServer(app).start()
    yield server, fake
    server.stop()
    app.extensions["creditline.db"].dispose()


@pytest.fixture
def shop_page(browser, shop_server):
    server, _ = shop_server
    context = browser.new_context(base_url=server.url, viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    violations = watch_csp(page)
    yield page
    context.close()
    assert violations == [], f"Content-Security-Policy violations: {violations}"


def test_pricing_checkout_and_live_credit(shop_page, shop_server) -> None:
    server, fake = shop_server
    page = shop_page
    billing = Billing(server.app)
    billing.user("alice@example.com", 1_200 * CR)  # below the 5,000-credit alert
    usage = {"user": "alice@example.com"}
    billing.debit("seed-1", usage["user"])
    billing.debit(
        "seed-2", usage["user"], model="gpt-4o-mini", input_tokens=40_000, output_tokens=9_000
    )
    sign_in(page, "alice@example.com")

    page.goto("/pricing")
    for usd, credits in (
        (5, "50,000"),
        (10, "100,000"),
        (25, "250,000"),
        (50, "500,000"),
        (100, "1,000,000"),
    ):
        card = page.locator(f'.topup-option[data-amount="{usd}"]')
        expect(card.locator(".amount")).to_have_text(credits)
        expect(card.get_by_role("button", name=f"Buy ${usd}")).to_be_enabled()
    screenshot(page, "pricing")

    # Buying goes to Stripe Checkout (answered here instead of the internet).
    page.route(
        "https://checkout.stripe.test/**",
        lambda route: route.fulfill(body="<h1>Stripe Checkout</h1>", content_type="text/html"),
    )
    page.locator('.topup-option[data-amount="25"]').get_by_role("button").click()
    page.wait_for_url("https://checkout.stripe.test/**")
    session_id = fake.last_session_id()

    page.goto("/dashboard")
    alert = page.locator("#low-balance-alert")
    expect(alert).to_contain_text("Your balance is low")
    page.evaluate("window.__noReload = true")

    # The customer pays; Stripe tells the webhook; the open dashboard follows.
    fake.complete(session_id)
    body, headers = signed(session_event("evt_paid", "checkout.session.completed", session_id))
    import urllib.request

    request = urllib.request.Request(
        server.url + "/webhooks/stripe", data=body.encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    expect(page.locator("#dashboard-balance .amount")).to_have_text("251,081.50", timeout=10_000)
    expect(alert).not_to_contain_text("balance is low")
    assert page.evaluate("window.__noReload") is True
