"""Accessibility check with axe-core (pinned in package.json, installed by
``make`` with ``npm ci`` into node_modules/), injected into a loaded page.

The script is run with ``page.evaluate`` of the file's text: Playwright runs
it in the page's main world over the DevTools protocol, which the page's
Content-Security-Policy does not govern (a ``<script>`` tag with the same text
would be refused by ``script-src 'self'``). The page fixture's CSP watcher
stays on meanwhile, so a check that tripped the policy would fail the test.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tests.browser.helpers import ROOT

AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2, levels A and AA.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
FAILING_IMPACTS = {"serious", "critical"}


@cache
def axe_source() -> str:
    if not AXE_JS.exists():
        raise AssertionError(f"{AXE_JS} is missing: run `npm ci --no-audit --no-fund` (make does)")
    return AXE_JS.read_text(encoding="utf-8")


def axe_violations(page: Any) -> list[str]:
    """Serious and critical WCAG A/AA violations on the page as loaded, one
    line each: rule id, help text, the offending elements' selectors."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})",
        WCAG_TAGS,
    )
    found = []
    for rule in result["violations"]:
        if rule["impact"] not in FAILING_IMPACTS:
            continue
        targets = ", ".join(" ".join(map(str, node["target"])) for node in rule["nodes"][:5])
        found.append(f"{rule['id']} ({rule['impact']}): {rule['help']} -> {targets}")
    return found
