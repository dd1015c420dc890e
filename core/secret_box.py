"""Secrets at rest: upstream and Dify API keys, encrypted with Fernet.

Creditline must send these keys to other services, so they cannot be hashed
like passwords; they are encrypted with ``cryptography``'s Fernet (AES-128-CBC
with HMAC-SHA256, a random IV per value, authenticated: a tampered or
foreign ciphertext is refused, never decrypted to garbage). Nothing here is
hand-rolled.

The key is not ``SECRET_KEY``: a leaked session key must not open the stored
secrets, and the two are rotated for different reasons. It comes from
``ENCRYPTION_KEY`` or, on first run, is generated into
``instance/encryption_key`` (mode 0600). ``ENCRYPTION_KEY`` may list several
keys separated by commas: the first encrypts, every one decrypts, so a key
is rotated by putting the new one first and re-saving the secrets.

A secret is never shown back: the UI and CLI only ever write it, and show
whether one is set.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.errors import SecretUnreadable


class SecretBox:
    """Encrypts and decrypts short secrets with the configured keys."""

    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",") if part.strip()]
        if not parts:
            raise ValueError("ENCRYPTION_KEY is empty")
        try:
            self._fernet = MultiFernet([Fernet(part.encode()) for part in parts])
        except ValueError:
            raise ValueError(
                "ENCRYPTION_KEY must be Fernet keys (32 url-safe base64-encoded bytes), "
                "comma-separated; make one with: "
                'python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            ) from None

    def seal(self, secret: str) -> str:
        """The ciphertext of ``secret`` (text, safe to store)."""
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        """The secret inside ``sealed``."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise SecretUnreadable(
                "A stored secret cannot be decrypted: ENCRYPTION_KEY has changed. "
                "Put the old key back (after the new one, comma-separated) "
                "or enter the secret again."
            ) from None


def load_or_create_key_file(path: Path, make: str) -> str:
    """The key in ``path``, writing ``make`` there first if the file does not exist.

    Atomic across processes: the key is written to a private temporary file
    and linked into place, so two workers starting at once agree on one key
    and nobody ever reads a half-written file.
    """
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make)
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


def load_or_create_encryption_key(instance_path: str) -> str:
    """``instance/encryption_key``, generated (mode 0600) on first run."""
    return load_or_create_key_file(
        Path(instance_path) / "encryption_key", Fernet.generate_key().decode("ascii")
    )
