"""Small helpers for browser tests: sign in through the real page, call the API,
save a screenshot."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("main").get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard")


def post_usage(base_url: str, key: str, **event: Any) -> tuple[int, dict[str, Any]]:
    """POST /api/v1/usage over real HTTP, as an integration would."""
    request = urllib.request.Request(
        base_url + "/api/v1/usage",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def screenshot(page: Any, name: str) -> None:
    """Into test-artifacts/, and into docs/screenshots/ with UPDATE_SCREENSHOTS=1."""
    folders = [ROOT / "test-artifacts"]
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        folders.append(ROOT / "docs" / "screenshots")
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
