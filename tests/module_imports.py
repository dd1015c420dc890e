"""Which files under tests/ import a test module.

A test module (``test_*.py``) holds tests only; what several modules share lives
in a conftest or in a helper module such as this one, so that running, moving or
deleting one test module never changes another. ``tests/conftest.py`` calls
``imports_of_test_modules`` before every run and refuses to start while it finds
any import of a test module (``tests.test_x``, ``tests.browser.test_y``,
``from tests import test_x``, ``.test_x``).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imports_of_test_modules(folder: Path = TESTS) -> list[str]:
    """``file:line module`` for each import, in any file under ``folder``, of a
    test module (``tests.test_x``, ``tests.browser.test_y``, ``.test_x``, ...)."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                modules = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                ours = module.startswith((".", "tests."))
                if ours and any(part.startswith("test_") for part in module.split(".")):
                    found.append(f"{path.relative_to(folder.parent)}:{node.lineno} {module}")
                    break
    return found
