"""Register, sign out and sign in through the real pages in Chromium."""

import pytest

pytestmark = pytest.mark.browser


def test_register_logout_login_in_chromium(page) -> None:
    page.goto("/")
    assert page.url.endswith("/auth/login")

    page.get_by_role("link", name="Create one").click()
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password", exact=True).fill("analytical engine")
    page.get_by_label("Repeat password").fill("analytical engine")
    page.get_by_role("main").get_by_role("button", name="Create account").click()
    page.wait_for_url("**/dashboard")
    assert "Signed in as ada@example.com" in page.content()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/auth/login")

    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("main").get_by_role("button", name="Sign in").click()
    assert "Wrong email or password" in page.content()

    page.get_by_label("Password").fill("analytical engine")
    page.get_by_role("main").get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard")
    assert "Signed in as ada@example.com" in page.content()
