"""Only ever redirect to a path on this site after login.

Browsers treat ``//evil.example`` and ``/\\evil.example`` as absolute URLs, and
strip tabs/newlines before parsing, so those are refused along with anything
that carries a scheme or host.
"""

from urllib.parse import urlsplit


def safe_next(target: str | None, default: str) -> str:
    if not target or not is_local_path(target):
        return default
    return target


def is_local_path(target: str) -> bool:
    if any(ord(ch) < 32 or ch == "\\" for ch in target):
        return False
    if not target.startswith("/") or target.startswith("//"):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc
