"""Secrets at rest (core.secret_box)."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from core.errors import SecretUnreadable
from core.secret_box import (
    SecretBox,
    load_or_create_encryption_key,
    load_or_create_key_file,
)


def test_a_sealed_secret_opens_and_does_not_contain_the_secret() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    sealed = box.seal("sk-live-abc123")
    assert "sk-live-abc123" not in sealed
    assert box.seal("sk-live-abc123") != sealed  # a random IV per value
    assert box.open(sealed) == "sk-live-abc123"


def test_another_key_or_a_tampered_value_is_refused() -> None:
    sealed = SecretBox(Fernet.generate_key().decode()).seal("secret")
    with pytest.raises(SecretUnreadable):
        SecretBox(Fernet.generate_key().decode()).open(sealed)
    box = SecretBox(Fernet.generate_key().decode())
    good = box.seal("secret")
    tampered = good[:-6] + ("A" if good[-6] != "A" else "B") + good[-5:]
    with pytest.raises(SecretUnreadable):
        box.open(tampered)


def test_rotation_new_key_first_old_values_still_open() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_old = SecretBox(old).seal("a")
    rotated = SecretBox(f"{new}, {old}")
    assert rotated.open(sealed_old) == "a"
    assert SecretBox(new).open(rotated.seal("b")) == "b"


@pytest.mark.parametrize("bad", ["", " , ", "not-a-key", "abc,def"])
def test_a_malformed_key_is_a_clear_configuration_error(bad: str) -> None:
    with pytest.raises(ValueError, match="ENCRYPTION_KEY"):
        SecretBox(bad)


def test_the_generated_key_file_is_private_and_stable(tmp_path: Path) -> None:
    key = load_or_create_encryption_key(str(tmp_path))
    path = tmp_path / "encryption_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_encryption_key(str(tmp_path)) == key
    SecretBox(key)  # a valid Fernet key


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda i: load_or_create_key_file(path, f"key-{i}"), range(32)))
    assert len(keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind
